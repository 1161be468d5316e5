namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// The built-in targets, by name. The 2-D ones report their exact log Z (quadrature), so any fit on them can
/// report the exact KL(q‖p); formulas: shared design notes and Rezende &amp; Mohamed (2015). Beyond 2-D:
/// "funnel" (Neal's, 10-D, log Z = 0), "correlated-gaussian" (50-D, condition number 100, seed 0, exact log Z)
/// and "eight-schools" (the non-centred posterior, 10-D, log Z unknown).
/// </summary>
public static class TargetGallery
{
    private static readonly Box Square8 = new(-8, 8, -8, 8);
    private static readonly Box Seeds = new(-4, 4, -8, 8);       // the z1-restricted box of the improper U2–U4
    private static readonly Box ProperWalls = new(-6, 6, -8, 8);

    private static readonly Dictionary<string, Func<Target>> Factories = new(StringComparer.OrdinalIgnoreCase)
    {
        ["u1"] = () => new EnergyTarget("u1", Energies.U1, Square8, true, "U1: ring of radius 2 with two lobes (proper)."),
        ["u2"] = () => new EnergyTarget("u2", Energies.U2, Seeds, false, "U2: sine wave; IMPROPER (no decay in z1); log Z reported for z1 in [-4, 4]."),
        ["u3"] = () => new EnergyTarget("u3", Energies.U3, Seeds, false, "U3: split sine wave; IMPROPER; log Z reported for z1 in [-4, 4]."),
        ["u4"] = () => new EnergyTarget("u4", Energies.U4, Seeds, false, "U4: sine with sigmoid step; IMPROPER; log Z reported for z1 in [-4, 4]."),
        ["u2-proper"] = () => new EnergyTarget("u2-proper", z => Energies.U2(z).Plus(Energies.Wall(z)), ProperWalls, true, "U2 with a soft wall ½((|z1|−4)/0.2)² beyond |z1| = 4 (proper)."),
        ["u3-proper"] = () => new EnergyTarget("u3-proper", z => Energies.U3(z).Plus(Energies.Wall(z)), ProperWalls, true, "U3 with a soft wall ½((|z1|−4)/0.2)² beyond |z1| = 4 (proper)."),
        ["u4-proper"] = () => new EnergyTarget("u4-proper", z => Energies.U4(z).Plus(Energies.Wall(z)), ProperWalls, true, "U4 with a soft wall ½((|z1|−4)/0.2)² beyond |z1| = 4 (proper)."),
        ["ring"] = () => new EnergyTarget("ring", Energies.Ring, Square8, true, "The seed's ring: radius 4, lobes at z1 = ±2 (proper; seed 002's p_z is the same density)."),
        ["two-moons"] = () => new EnergyTarget("two-moons", TwoMoons.Energy, Square8, true, "Two interleaved half circles of radius 2 blurred by N(0, 0.2²) across the arcs (proper)."),
        ["funnel"] = () => new FunnelTarget(),
        ["correlated-gaussian"] = () => new CorrelatedGaussianTarget(),
        ["eight-schools"] = () => new EightSchoolsTarget(),
    };

    /// <summary>The names <see cref="Create"/> accepts (plus "image:PATH.png").</summary>
    public static IReadOnlyList<string> Names { get; } = Factories.Keys.Append("image:PATH.png").ToArray();

    /// <summary>Creates a built-in target: one of <see cref="Names"/>, or "image:PATH" for a PNG.</summary>
    public static Target Create(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A target name is required.", nameof(name));
        if (name.StartsWith("image:", StringComparison.OrdinalIgnoreCase))
            return ImageTarget.FromPng(name["image:".Length..]);
        if (Factories.TryGetValue(name, out var factory)) return factory();
        throw new ArgumentException($"Unknown target '{name}'. Known targets: {string.Join(", ", Names)}.", nameof(name));
    }
}
