using System.Buffers.Binary;
using System.IO.Compression;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// A small PNG decoder (non-interlaced; grey, grey+alpha, RGB, RGBA and palette images of 8 or 16 bits,
/// palette also 1/2/4 bits) returning luminance in [0, 1], composited on white. It keeps the core
/// library free of native imaging dependencies; anything it cannot read fails with an
/// <see cref="InvalidDataException"/> that says why.
/// </summary>
internal static class PngReader
{
    private static readonly byte[] Signature = [137, 80, 78, 71, 13, 10, 26, 10];

    /// <summary>Returns luminance [height, width], 0 = black, 1 = white.</summary>
    public static float[,] ReadLuminance(Stream stream, string sourceName)
    {
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        var data = memory.ToArray();
        if (data.Length < 8 || !data.AsSpan(0, 8).SequenceEqual(Signature))
            throw new InvalidDataException($"'{sourceName}' is not a PNG file (bad signature).");

        int width = 0, height = 0, bitDepth = 0, colorType = -1;
        byte[]? palette = null;
        byte[]? paletteAlpha = null;
        using var idat = new MemoryStream();
        int pos = 8;
        bool sawEnd = false;
        while (pos + 8 <= data.Length && !sawEnd)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(pos));
            string type = System.Text.Encoding.ASCII.GetString(data, pos + 4, 4);
            if (length < 0 || pos + 12 + (long)length > data.Length)
                throw new InvalidDataException($"'{sourceName}' is truncated or corrupt (chunk '{type}' runs past the end of the file).");
            var body = data.AsSpan(pos + 8, length);
            switch (type)
            {
                case "IHDR":
                    width = BinaryPrimitives.ReadInt32BigEndian(body);
                    height = BinaryPrimitives.ReadInt32BigEndian(body[4..]);
                    bitDepth = body[8];
                    colorType = body[9];
                    if (body[12] != 0) throw new InvalidDataException($"'{sourceName}' is an interlaced PNG; save it without interlacing.");
                    break;
                case "PLTE": palette = body.ToArray(); break;
                case "tRNS": paletteAlpha = body.ToArray(); break;
                case "IDAT": idat.Write(body); break;
                case "IEND": sawEnd = true; break;
            }
            pos += 12 + length;
        }
        if (width <= 0 || height <= 0) throw new InvalidDataException($"'{sourceName}' has no valid IHDR header.");
        if (!sawEnd) throw new InvalidDataException($"'{sourceName}' is truncated (no IEND chunk).");
        int channels = colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => throw new InvalidDataException($"'{sourceName}' has unknown PNG colour type {colorType}.") };
        bool supportedDepth = bitDepth == 8 || bitDepth == 16 || (colorType == 3 && bitDepth is 1 or 2 or 4) || (colorType == 0 && bitDepth is 1 or 2 or 4);
        if (!supportedDepth) throw new InvalidDataException($"'{sourceName}' has an unsupported bit depth {bitDepth} for colour type {colorType}.");
        if (colorType == 3 && palette is null) throw new InvalidDataException($"'{sourceName}' is a palette image without a PLTE chunk.");

        int bitsPerPixel = channels * bitDepth;
        int stride = (width * bitsPerPixel + 7) / 8;
        int bytesPerPixel = Math.Max(1, bitsPerPixel / 8);
        var raw = new byte[(long)(stride + 1) * height];
        try
        {
            idat.Position = 0;
            using var z = new ZLibStream(idat, CompressionMode.Decompress);
            int read = 0;
            while (read < raw.Length)
            {
                int n = z.Read(raw, read, raw.Length - read);
                if (n == 0) break;
                read += n;
            }
            if (read < raw.Length) throw new InvalidDataException($"'{sourceName}' has too little image data ({read} of {raw.Length} bytes).");
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith('\''))
        {
            throw new InvalidDataException($"'{sourceName}' has corrupt compressed image data: {e.Message}", e);
        }

        var image = new float[height, width];
        var previous = new byte[stride];
        var line = new byte[stride];
        for (int row = 0; row < height; row++)
        {
            int offset = row * (stride + 1);
            byte filter = raw[offset];
            Array.Copy(raw, offset + 1, line, 0, stride);
            Unfilter(filter, line, previous, bytesPerPixel, sourceName);
            for (int col = 0; col < width; col++)
                image[row, col] = Luminance(line, col, colorType, bitDepth, channels, palette, paletteAlpha);
            (previous, line) = (line, previous);
        }
        return image;
    }

    private static void Unfilter(byte filter, byte[] line, byte[] previous, int bpp, string sourceName)
    {
        for (int i = 0; i < line.Length; i++)
        {
            int left = i >= bpp ? line[i - bpp] : 0;
            int up = previous[i];
            int upLeft = i >= bpp ? previous[i - bpp] : 0;
            int predictor = filter switch
            {
                0 => 0,
                1 => left,
                2 => up,
                3 => (left + up) / 2,
                4 => Paeth(left, up, upLeft),
                _ => throw new InvalidDataException($"'{sourceName}' is corrupt (unknown row filter {filter})."),
            };
            line[i] = (byte)(line[i] + predictor);
        }
    }

    private static int Paeth(int a, int b, int c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static float Luminance(byte[] line, int col, int colorType, int bitDepth, int channels, byte[]? palette, byte[]? paletteAlpha)
    {
        if (bitDepth < 8)
        {
            int perByte = 8 / bitDepth;
            int shift = 8 - bitDepth * (col % perByte + 1);
            int value = (line[col / perByte] >> shift) & ((1 << bitDepth) - 1);
            if (colorType == 0) return value / (float)((1 << bitDepth) - 1);
            return PaletteLuminance(value, palette!, paletteAlpha);
        }
        int bytesPerSample = bitDepth / 8;
        float Sample(int channel) => line[(col * channels + channel) * bytesPerSample] / 255f; // high byte suffices for a density
        switch (colorType)
        {
            case 0: return Sample(0);
            case 3: return PaletteLuminance(line[col], palette!, paletteAlpha);
            case 4: return Composite(Sample(0), Sample(1));
            case 2: return Gray(Sample(0), Sample(1), Sample(2));
            default: return Composite(Gray(Sample(0), Sample(1), Sample(2)), Sample(3));
        }
    }

    private static float PaletteLuminance(int index, byte[] palette, byte[]? alpha)
    {
        if (3 * index + 2 >= palette.Length) throw new InvalidDataException($"PNG palette index {index} is outside the palette.");
        float a = alpha is not null && index < alpha.Length ? alpha[index] / 255f : 1f;
        return Composite(Gray(palette[3 * index] / 255f, palette[3 * index + 1] / 255f, palette[3 * index + 2] / 255f), a);
    }

    private static float Gray(float r, float g, float b) => 0.299f * r + 0.587f * g + 0.114f * b;
    private static float Composite(float gray, float alpha) => gray * alpha + (1 - alpha); // over white
}
