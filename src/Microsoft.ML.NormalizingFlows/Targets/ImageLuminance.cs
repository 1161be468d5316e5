using StbImageSharp;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// Reads a picture (PNG, JPEG, BMP, GIF, TGA, PSD, HDR — whatever StbImageSharp, a maintained managed decoder,
/// reads) as luminance in [0, 1], composited on white. The header is read first, so a file that declares an
/// absurd size is refused before anything is allocated; anything unreadable is an <see cref="InvalidDataException"/>
/// naming the file.
/// </summary>
internal static class ImageLuminance
{
    /// <summary>Largest picture accepted (pixels): 64 megapixels, 256 MB of RGBA while decoding.</summary>
    public const long MaxPixels = 64L * 1024 * 1024;

    /// <summary>Returns luminance [height, width], 0 = black, 1 = white.</summary>
    public static float[,] Read(Stream stream, string sourceName)
    {
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        var data = memory.ToArray();
        var info = ImageInfo.FromStream(new MemoryStream(data, writable: false)) ?? throw Unreadable(data, sourceName);
        if (info.Width <= 0 || info.Height <= 0 || (long)info.Width * info.Height > MaxPixels)
            throw new InvalidDataException(
                $"'{sourceName}' declares {info.Width}×{info.Height} pixels; an image target takes at most {MaxPixels / (1024 * 1024)} megapixels with positive sides.");
        ImageResult image;
        try
        {
            image = ImageResult.FromMemory(data, ColorComponents.RedGreenBlueAlpha);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{sourceName}' is truncated or corrupt: {e.Message}", e);
        }
        if (image.Width != info.Width || image.Height != info.Height || image.Data.Length != 4L * image.Width * image.Height)
            throw new InvalidDataException($"'{sourceName}' is truncated or corrupt: its pixels do not match its declared {info.Width}×{info.Height} size.");
        var luminance = new float[image.Height, image.Width];
        var pixels = image.Data;
        for (int y = 0, i = 0; y < image.Height; y++)
            for (int x = 0; x < image.Width; x++, i += 4)
            {
                float alpha = pixels[i + 3] / 255f;
                float grey = (0.299f * pixels[i] + 0.587f * pixels[i + 1] + 0.114f * pixels[i + 2]) / 255f; // ITU-R BT.601 luma
                luminance[y, x] = alpha * grey + (1 - alpha); // transparent = white paper
            }
        return luminance;
    }

    /// <summary>The decoder's own reason when the header was refused (e.g. a declared size beyond its 2^24 limit).</summary>
    private static InvalidDataException Unreadable(byte[] data, string sourceName)
    {
        try
        {
            ImageResult.FromMemory(data, ColorComponents.RedGreenBlueAlpha);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return new InvalidDataException($"'{sourceName}' cannot be read as a picture (PNG, JPEG, BMP, GIF, TGA, PSD or HDR up to 2^24 pixels a side); the decoder says: {e.Message}", e);
        }
        return new InvalidDataException($"'{sourceName}' is not a picture this library can read (PNG, JPEG, BMP, GIF, TGA, PSD or HDR).");
    }
}
