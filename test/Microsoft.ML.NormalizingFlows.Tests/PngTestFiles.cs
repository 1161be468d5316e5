using System.Buffers.Binary;
using SkiaSharp;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>PNG helpers for tests: draw known pictures, read a PNG's declared size.</summary>
internal static class PngTestFiles
{
    /// <summary>A white square image of <paramref name="size"/> pixels with one black anti-aliased disk.</summary>
    public static string DrawDisk(string directory, int size, float centerX, float centerY, float radius)
    {
        using var bitmap = new SKBitmap(size, size);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var paint = new SKPaint { Color = SKColors.Black, IsAntialias = true, Style = SKPaintStyle.Fill };
            canvas.DrawCircle(centerX, centerY, radius, paint);
        }
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        var path = Path.Combine(directory, $"disk_{Guid.NewGuid():N}.png");
        File.WriteAllBytes(path, data.ToArray());
        return path;
    }

    /// <summary>Width and height from the IHDR chunk, after checking the PNG signature.</summary>
    public static (int Width, int Height) ReadSize(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length < 24) throw new InvalidDataException($"{path} is too short to be a PNG ({bytes.Length} bytes).");
        byte[] signature = [137, 80, 78, 71, 13, 10, 26, 10];
        if (!bytes.AsSpan(0, 8).SequenceEqual(signature)) throw new InvalidDataException($"{path} has no PNG signature.");
        if (System.Text.Encoding.ASCII.GetString(bytes, 12, 4) != "IHDR") throw new InvalidDataException($"{path} does not start with IHDR.");
        return (BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)), BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
    }

    public static string NewTempDirectory()
    {
        var dir = Path.Combine(Path.GetTempPath(), "nf-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
