using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Platform;

/// <summary>Turns a device name into a TorchSharp device, failing clearly when CUDA is asked for and absent.</summary>
public static class DeviceSelector
{
    public static Device Resolve(string? name)
    {
        NativeRuntime.EnsureLoaded();
        var text = string.IsNullOrWhiteSpace(name) ? "cpu" : name.Trim().ToLowerInvariant();
        if (text == "cpu") return torch.CPU;
        if (text == "auto") return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        if (text == "cuda" || text.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!torch.cuda.is_available())
                throw new InvalidOperationException(
                    $"Device '{name}' was requested but CUDA is not available: either this build references TorchSharp-cpu " +
                    "(rebuild with -p:TorchBackend=cuda) or no NVIDIA GPU and driver were found. Use Device = \"cpu\" or \"auto\".");
            if (text.Length > 5)
            {
                if (!int.TryParse(text[5..], out int index) || index < 0)
                    throw new ArgumentException($"Device '{name}' is not of the form cuda:N.", nameof(name));
                if (index >= torch.cuda.device_count())
                    throw new ArgumentException($"Device '{name}' does not exist: {torch.cuda.device_count()} CUDA device(s) found.", nameof(name));
                return torch.device(DeviceType.CUDA, index);
            }
            return torch.CUDA;
        }
        throw new ArgumentException($"Unknown device '{name}'. Expected \"cpu\", \"cuda\", \"cuda:N\" or \"auto\".", nameof(name));
    }
}
