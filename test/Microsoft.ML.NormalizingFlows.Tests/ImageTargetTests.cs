using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// ImageTarget on pictures the tests draw: a 128-pixel white square with a black disk. The default box
/// maps it onto [−4, 4]², so a pixel is 1/16 wide and a disk of radius r pixels has radius r/16 in z.
/// </summary>
[TestClass]
public sealed class ImageTargetTests : TempDirectoryTest
{
    private const int Size = 128;
    private const double Pixel = 8.0 / Size;
    public TestContext TestContext { get; set; } = null!;

    private static double Density(Target target, double x, double y)
    {
        using var scope = torch.NewDisposeScope();
        return target.Evaluate(torch.tensor(new[] { x, y }).reshape(1, 2)).exp().item<double>();
    }

    [TestMethod]
    public void LogNormalizer_ByQuadrature_MatchesDiskAreaPlusFloorTimesBox()
    {
        var path = PngTestFiles.DrawDisk(TempDirectory, Size, 64, 64, 32);
        var target = ImageTarget.FromPng(path);
        double radius = 32 * Pixel; // 2
        // Dark disk (intensity 1) + floor over the 8×8 box + the Gaussian walls' tails beyond the four edges.
        double wallTails = 4 * 8 * 1e-3 * ImageTarget.WallWidth * Math.Sqrt(Math.PI / 2);
        double analytic = Math.Log(Math.PI * radius * radius + 1e-3 * 64 + wallTails);
        double logZ = target.LogNormalizer!.Value;
        // The pixels' own dark mass: bilinear interpolation between pixel centers integrates to exactly
        // Σ darkness × pixel area (the border pixels are white), so this one must match closely.
        float[,] luminance;
        using (var stream = File.OpenRead(path)) luminance = ImageLuminance.Read(stream, path);
        double darkArea = 0;
        foreach (var l in luminance) darkArea += (1 - l) * Pixel * Pixel;
        double fromPixels = Math.Log(darkArea + 1e-3 * 64 + wallTails);
        TestContext.WriteLine($"log Z quadrature {logZ:F6}, analytic disk {analytic:F6} (diff {logZ - analytic:E2}), from pixels {fromPixels:F6} (diff {logZ - fromPixels:E2})");
        // Measured: −5.5e-3 against the ideal disk (Skia's anti-aliased rim covers slightly less than πr²)
        // and 5e-6 against the pixels' own mass.
        Assert.AreEqual(analytic, logZ, 1e-2);
        Assert.AreEqual(fromPixels, logZ, 1e-4);
    }

    [TestMethod]
    public void Density_IsHighOnDarkPixelsAndAtTheFloorOnWhite()
    {
        var target = ImageTarget.FromPng(PngTestFiles.DrawDisk(TempDirectory, Size, 64, 64, 32));
        Assert.AreEqual(1 + 1e-3, Density(target, 0, 0), 1e-4, "disk center: full darkness + floor");
        Assert.AreEqual(1 + 1e-3, Density(target, 1.2, -0.7), 1e-4, "inside the disk");
        Assert.AreEqual(1e-3, Density(target, 3.5, 3.5), 1e-6, "white corner: the floor only");
        Assert.AreEqual(1e-3, Density(target, -3, 0), 1e-6, "white, left of the disk");
        Assert.IsTrue(Density(target, 5, 0) < 1e-3 * Math.Exp(-40), "well outside the box the wall takes over");
    }

    [TestMethod]
    public void BilinearInterpolation_IsContinuousAcrossTheRim()
    {
        var target = ImageTarget.FromPng(PngTestFiles.DrawDisk(TempDirectory, Size, 64, 64, 32));
        // Walk along z₂ = 0.03 from the center out through the rim in steps far smaller than a pixel.
        int n = 20_001;
        var xs = torch.linspace(0, 3, n, dtype: ScalarType.Float64);
        var z = torch.stack(new[] { xs, torch.full(n, 0.03, dtype: ScalarType.Float64) }, 1);
        var density = target.Evaluate(z).exp().data<double>().ToArray();
        double step = 3.0 / (n - 1);
        double maxJump = 0;
        for (int i = 1; i < n; i++) maxJump = Math.Max(maxJump, Math.Abs(density[i] - density[i - 1]));
        // Linear between pixel centers: |slope| ≤ 1 per pixel, so a step changes the density by ≤ step/pixel
        // (1.6e-3 here); nearest-pixel lookup would jump by up to 1 at the rim.
        Assert.IsTrue(maxJump <= step / Pixel + 1e-9, $"largest jump {maxJump:E3} exceeds {step / Pixel:E3}");
        Assert.IsTrue(density[0] > 0.99 && density[^1] < 0.01, "the walk must actually cross from dark to white");
    }

    [TestMethod]
    public void TruncatedPng_GivesInvalidDataExceptionNamingTheFile()
    {
        var good = PngTestFiles.DrawDisk(TempDirectory, Size, 64, 64, 32);
        var bytes = File.ReadAllBytes(good);
        var truncated = Path.Combine(TempDirectory, "truncated.png");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageTarget.FromPng(truncated));
        StringAssert.Contains(e.Message, "truncated.png");
        StringAssert.Contains(e.Message, "truncated");
        // The gallery's image:PATH route reports the same.
        Assert.ThrowsExactly<InvalidDataException>(() => TargetGallery.Create("image:" + truncated));
    }

    [TestMethod]
    public void NonPngFile_GivesInvalidDataExceptionSayingSo()
    {
        var path = Path.Combine(TempDirectory, "letter.png");
        File.WriteAllText(path, "this is not a picture");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageTarget.FromPng(path));
        StringAssert.Contains(e.Message, "cannot be read as a picture");
    }

    /// <summary>A drawn PNG whose IHDR is rewritten to declare <paramref name="width"/>×<paramref name="height"/>.</summary>
    internal static string CraftHugePng(string directory, int width = 100_000, int height = 100_000)
    {
        var bytes = File.ReadAllBytes(PngTestFiles.DrawDisk(directory, Size, 64, 64, 32));
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        var path = Path.Combine(directory, "huge.png");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [TestMethod]
    public void APngDeclaringAHugeSizeIsRefusedBeforeDecoding()
    {
        // Reproduction: the hand-written decoder threw OverflowException on a header declaring 100000×100000,
        // which crashed the CLI (exit 134).
        var path = CraftHugePng(TempDirectory);
        Assert.AreEqual((100_000, 100_000), PngTestFiles.ReadSize(path));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageTarget.FromPng(path));
        StringAssert.Contains(e.Message, "huge.png");
        StringAssert.Contains(e.Message, "too large");
        Assert.ThrowsExactly<InvalidDataException>(() => TargetGallery.Create("image:" + path));
        // A zero side is refused the same way.
        Assert.ThrowsExactly<InvalidDataException>(() => ImageTarget.FromPng(CraftHugePng(TempDirectory, 0, 64)));
    }

    [TestMethod]
    public void OtherPictureFormatsLoadLikePng()
    {
        // The maintained decoder reads JPEG too: the disk drawn and saved as JPEG gives nearly the same density.
        var png = PngTestFiles.DrawDisk(TempDirectory, Size, 64, 64, 32);
        using var bitmap = SkiaSharp.SKBitmap.Decode(png);
        using var jpegData = bitmap.Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 95);
        var jpeg = Path.Combine(TempDirectory, "disk.jpg");
        File.WriteAllBytes(jpeg, jpegData.ToArray());
        var fromJpeg = ImageTarget.FromPng(jpeg);
        Assert.AreEqual(1 + 1e-3, Density(fromJpeg, 0, 0), 2e-2);
        Assert.AreEqual(1e-3, Density(fromJpeg, 3.5, 3.5), 2e-2);
    }

    [TestMethod]
    public void CorruptImageData_GivesInvalidDataException()
    {
        var bytes = File.ReadAllBytes(PngTestFiles.DrawDisk(TempDirectory, Size, 64, 64, 32));
        // Overwrite the compressed pixel data (after the IDAT chunk header) with garbage, keeping lengths.
        int idat = IndexOf(bytes, "IDAT"u8.ToArray());
        Assert.IsTrue(idat > 0, "the drawn PNG must have an IDAT chunk");
        for (int i = idat + 4; i < Math.Min(bytes.Length - 16, idat + 4 + 64); i++) bytes[i] = 0xFF;
        var path = Path.Combine(TempDirectory, "corrupt.png");
        File.WriteAllBytes(path, bytes);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageTarget.FromPng(path));
        StringAssert.Contains(e.Message, "corrupt.png");
    }

    [TestMethod]
    public void ShortRadialFit_PutsMostSamplesOnTheDarkDisk()
    {
        // Disk of radius 1.5 centered at (1.5, 1.5): off the origin, so q has to move there.
        var target = ImageTarget.FromPng(PngTestFiles.DrawDisk(TempDirectory, Size, 88, 40, 24));
        var q = FlowFactory.Create("radial", 2, 8, seed: 0);
        var fit = VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = 1500, BatchSize = 128, LearningRate = 1e-2 });
        Assert.AreEqual(0, fit.SkippedSteps);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (z, _) = q.Sample(4000, new Generator(3));
        var onDark = (target.Evaluate(z.to(ScalarType.Float64)).exp() > 0.5).to(ScalarType.Float64).mean().item<double>();
        TestContext.WriteLine($"fraction of draws on dark pixels: {onDark:F3}");
        Assert.IsTrue(onDark > 0.8, $"only {onDark:P1} of the draws are on the disk");
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }
}
