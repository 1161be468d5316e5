using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.ML.NormalizingFlows.Distributions;

namespace Microsoft.ML.NormalizingFlows.Persistence;

/// <summary>
/// Saves and loads a fitted flow: its <see cref="FlowDescription"/> as JSON and its TorchSharp state dict.
/// <para>
/// Layout (little-endian): 8-byte magic "NFLOWv01"; uint16 format version; int32 JSON length + UTF-8 JSON;
/// int64 weights length + TorchSharp state-dict bytes; 32-byte SHA-256 of everything before it.
/// A truncated, corrupted or foreign stream gives an <see cref="InvalidDataException"/> that says which
/// check failed; the weights are only handed to TorchSharp after the checksum matched.
/// </para>
/// </summary>
public static class FlowSerializer
{
    private static readonly byte[] Magic = "NFLOWv01"u8.ToArray();

    /// <summary>The format version written; readers accept versions up to this one.</summary>
    /// <remarks>Version 2: coupling layers' conditioners read only the kept coordinates and emit parameters only
    /// for the transformed ones, so a version-1 coupling flow's weights have other shapes. Every other preset's
    /// layout is unchanged and version-1 files of them still load.</remarks>
    public const ushort FormatVersion = 2;

    /// <summary>Presets whose weight layout changed in version 2 (see <see cref="FormatVersion"/>).</summary>
    private static readonly string[] ChangedInVersion2 = { "realnvp", "nsf-coupling" };

    private const int MaxJsonBytes = 16 << 20;
    private const long MaxWeightBytes = 4L << 30;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public static void Save(FlowDistribution flow, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(flow);
        ArgumentNullException.ThrowIfNull(stream);
        var description = FlowDescription.Of(flow);
        byte[] json = JsonSerializer.SerializeToUtf8Bytes(description, Json);
        byte[] weights;
        using (var buffer = new MemoryStream())
        {
            flow.save(buffer);
            weights = buffer.ToArray();
        }
        using var payload = new MemoryStream();
        payload.Write(Magic);
        Span<byte> scratch = stackalloc byte[8];
        BinaryPrimitives.WriteUInt16LittleEndian(scratch, FormatVersion); payload.Write(scratch[..2]);
        BinaryPrimitives.WriteInt32LittleEndian(scratch, json.Length); payload.Write(scratch[..4]);
        payload.Write(json);
        BinaryPrimitives.WriteInt64LittleEndian(scratch, weights.LongLength); payload.Write(scratch[..8]);
        payload.Write(weights);
        byte[] body = payload.ToArray();
        stream.Write(body);
        stream.Write(SHA256.HashData(body));
    }

    public static void Save(FlowDistribution flow, string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var file = File.Create(path);
        Save(flow, file);
    }

    /// <summary>Reads exactly one saved flow from the stream (which may hold more data after it).</summary>
    /// <exception cref="InvalidDataException">The stream is truncated, corrupted, or not a saved flow.</exception>
    public static FlowDistribution Load(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var body = new MemoryStream();
        byte[] magic = ReadExactly(stream, Magic.Length, "the format header", body);
        if (!magic.AsSpan().SequenceEqual(Magic))
            throw new InvalidDataException($"Not a saved normalizing flow: the header is '{Printable(magic)}', expected '{Encoding.ASCII.GetString(Magic)}'.");
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(ReadExactly(stream, 2, "the format version", body));
        if (version == 0 || version > FormatVersion)
            throw new InvalidDataException($"The saved flow has format version {version}; this library reads versions 1 to {FormatVersion}.");
        int jsonLength = BinaryPrimitives.ReadInt32LittleEndian(ReadExactly(stream, 4, "the description length", body));
        if (jsonLength <= 0 || jsonLength > MaxJsonBytes)
            throw new InvalidDataException($"The saved flow is corrupted: its description length {jsonLength} is out of range.");
        byte[] json = ReadExactly(stream, jsonLength, "the description", body);
        long weightLength = BinaryPrimitives.ReadInt64LittleEndian(ReadExactly(stream, 8, "the weights length", body));
        if (weightLength <= 0 || weightLength > MaxWeightBytes)
            throw new InvalidDataException($"The saved flow is corrupted: its weights length {weightLength} is out of range.");
        byte[] weights = ReadExactly(stream, checked((int)weightLength), "the weights", body);
        byte[] checksum = ReadExactly(stream, 32, "the checksum", null);
        if (!SHA256.HashData(body.ToArray()).AsSpan().SequenceEqual(checksum))
            throw new InvalidDataException("The saved flow is corrupted: its SHA-256 checksum does not match its contents.");

        FlowDescription? description;
        try
        {
            description = JsonSerializer.Deserialize<FlowDescription>(json, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The saved flow's description is not valid: {e.Message}", e);
        }
        if (description?.Spec is null) throw new InvalidDataException("The saved flow's description has no spec.");
        if (version < 2 && ChangedInVersion2.Contains(description.Spec.Preset, StringComparer.OrdinalIgnoreCase))
            throw new InvalidDataException($"The saved flow ({description.Spec}) was written in format version {version}, whose coupling layers " +
                "had a different weight layout; this library's coupling layers condition on the kept coordinates only. Fit the flow again and save it.");
        FlowDistribution flow;
        try
        {
            flow = description.Build();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            throw new InvalidDataException($"The saved flow cannot be rebuilt ({description.Spec}): {e.Message}", e);
        }
        try
        {
            using var weightStream = new MemoryStream(weights, writable: false);
            flow.load(weightStream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"The saved flow's weights do not fit its architecture ({description.Spec}): {e.Message}", e);
        }
        flow.eval();
        return flow;
    }

    public static FlowDistribution Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var file = File.OpenRead(path);
        return Load(file);
    }

    private static byte[] ReadExactly(Stream stream, int count, string what, MemoryStream? copy)
    {
        var buffer = new byte[count];
        int read = 0;
        while (read < count)
        {
            int n = stream.Read(buffer, read, count - read);
            if (n == 0)
                throw new InvalidDataException($"The saved flow is truncated: the stream ended while reading {what} ({read} of {count} bytes).");
            read += n;
        }
        copy?.Write(buffer);
        return buffer;
    }

    private static string Printable(byte[] bytes) => new(bytes.Select(b => b is >= 32 and < 127 ? (char)b : '?').ToArray());
}
