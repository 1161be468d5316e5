using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// A 2-D density drawn by a picture: p̃(z) = floor + I(z), where I is the image's darkness
/// (1 − luminance; or its brightness, if chosen) bilinearly interpolated between pixel centers, the
/// image mapped onto a box in z-space. The small floor keeps log p̃ finite on blank pixels. Outside the
/// box a Gaussian wall ½(distance/0.1)² makes the density proper, so log Z (by quadrature) is exact.
/// </summary>
public sealed class ImageTarget : Target
{
    public const double WallWidth = 0.1;
    private readonly int width, height;
    private readonly Box box;
    private readonly double floor;
    private readonly Lazy<double> logZ;
    private readonly CachedConstant table;  // darkness per pixel, row-major [height · width], row 0 = top of the picture

    /// <param name="luminance">[height, width] values in [0, 1] (0 = black).</param>
    /// <param name="box">Where the picture lies in z-space; null: the longer side spans [−4, 4], aspect kept.</param>
    /// <param name="darkIsDense">True (default): dark pixels carry the mass; false: bright pixels do.</param>
    /// <param name="floor">Density added everywhere inside the box, relative to a fully dark pixel (1).</param>
    /// <param name="name">The target's name in messages and reports.</param>
    public ImageTarget(float[,] luminance, Box? box = null, bool darkIsDense = true, double floor = 1e-3, string name = "image")
        : base(name, 2)
    {
        ArgumentNullException.ThrowIfNull(luminance);
        height = luminance.GetLength(0);
        width = luminance.GetLength(1);
        if (width < 2 || height < 2) throw new ArgumentException($"The image must be at least 2×2 pixels; got {width}×{height}.", nameof(luminance));
        if (!(floor > 0) || double.IsInfinity(floor)) throw new ArgumentOutOfRangeException(nameof(floor), floor, "floor must be positive and finite so that log p̃ is finite.");
        this.floor = floor;
        // float32 pixel values (as read), held in float64 for the table.
        var intensity = new double[width * height];
        double total = 0;
        for (int r = 0; r < height; r++)
            for (int c = 0; c < width; c++)
            {
                float l = luminance[r, c];
                if (!(l >= 0 && l <= 1)) throw new ArgumentException($"Luminance must lie in [0, 1]; pixel ({r}, {c}) is {l}.", nameof(luminance));
                float v = darkIsDense ? 1 - l : l;
                intensity[r * width + c] = v;
                total += v;
            }
        if (total <= 0) throw new ArgumentException(darkIsDense ? "The image has no dark pixels: nothing to put density on." : "The image has no bright pixels: nothing to put density on.", nameof(luminance));
        table = new CachedConstant(intensity);
        double longer = Math.Max(width, height);
        this.box = box ?? new Box(-4 * width / longer, 4 * width / longer, -4 * height / longer, 4 * height / longer);
        if (!(this.box.Width > 0) || !(this.box.Height > 0)) throw new ArgumentException($"The box must have positive width and height; got {this.box}.", nameof(box));
        var support = Support!.Value;
        double pixel = Math.Min(this.box.Width / width, this.box.Height / height);
        double spacing = Math.Min(0.01, pixel / 8);
        logZ = new Lazy<double>(() => Quadrature.LogNormalizer(this, support, (int)Math.Ceiling(Math.Max(support.Width, support.Height) / spacing)));
    }

    /// <summary>Reads a picture (PNG, JPEG, BMP, ...; see <see cref="ImageLuminance"/>) into an image target.</summary>
    public static ImageTarget FromPng(string path, Box? box = null, bool darkIsDense = true, double floor = 1e-3)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("A PNG path is required.", nameof(path));
        if (!File.Exists(path)) throw new FileNotFoundException($"Image file '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        return new ImageTarget(ImageLuminance.Read(stream, path), box, darkIsDense, floor, "image:" + Path.GetFileName(path));
    }

    public Box ImageBox => box;

    public override Box? Support => new Box(box.MinX - 0.5, box.MaxX + 0.5, box.MinY - 0.5, box.MaxY + 0.5);

    public override double? LogNormalizer => logZ.Value;

    public override Tensor LogDensity(Tensor z)
    {
        var table = this.table.Like(z);
        var x = z[.., 0];
        var y = z[.., 1];
        // Continuous pixel coordinates with pixel centers at integers; row 0 is the top (largest y).
        var u = ((x - S(box.MinX)) * S(width / box.Width) - S(0.5)).clamp(S(0), S(width - 1));
        var v = (y.SubtractedFrom(box.MaxY) * S(height / box.Height) - S(0.5)).clamp(S(0), S(height - 1));
        var u0 = u.floor().clamp(S(0), S(width - 2));
        var v0 = v.floor().clamp(S(0), S(height - 2));
        var fu = u - u0;
        var fv = v - v0;
        var i00 = (v0 * S(width)).Plus(u0).to(ScalarType.Int64);
        Tensor At(Tensor index) => table.index_select(0, index);
        var top = (At(i00) * fu.SubtractedFrom(1)).Plus(At(i00.Plus(1)) * fu);
        var bottom = (At(i00.Plus(width)) * fu.SubtractedFrom(1)).Plus(At(i00.Plus(width + 1)) * fu);
        var density = (top * fv.SubtractedFrom(1)).Plus(bottom * fv).Plus(floor);
        var outsideX = x.SubtractedFrom(box.MinX).relu().Plus((x - S(box.MaxX)).relu());
        var outsideY = y.SubtractedFrom(box.MinY).relu().Plus((y - S(box.MaxY)).relu());
        var wall = S(0.5) * outsideX.Squared().Plus(outsideY.Squared()) / S(WallWidth * WallWidth);
        return density.log() - wall;
    }
}
