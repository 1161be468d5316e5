using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// K planar layers (Rezende &amp; Mohamed 2015): f(z) = z + û tanh(wᵀz + b), applied K times.
/// <para>
/// Invertibility needs wᵀû ≥ −1. It is enforced differentiably with
/// û = u + (m(wᵀu) − wᵀu) w / ‖w‖², m(x) = −1 + softplus(x), so wᵀû = m(wᵀu) &gt; −1 and
/// det J = 1 + (1 − tanh²(wᵀz + b)) wᵀû &gt; 0 exactly: no epsilon inside the log.
/// </para>
/// <para>
/// The K layers' parameters are stacked ([K, d], [K]) so that û, wᵀû and the log-determinants of all
/// layers cost a handful of tensor operations per step instead of a few per layer: with small flows the
/// per-operation overhead, not arithmetic, sets the speed.
/// </para>
/// </summary>
public sealed class PlanarFlow : FlowTransform
{
    private readonly TorchSharp.Modules.Parameter w;
    private readonly TorchSharp.Modules.Parameter u;
    private readonly TorchSharp.Modules.Parameter b;

    /// <param name="dimension">d.</param>
    /// <param name="layers">K ≥ 1.</param>
    /// <param name="initScale">Standard deviation of the N(0, s²) initialization of w, u and b (the seed uses 0.1).</param>
    /// <param name="generator">Random source for the initialization (null: TorchSharp's global generator).</param>
    public PlanarFlow(int dimension, int layers, double initScale = 0.1, Generator? generator = null)
        : base(nameof(PlanarFlow), dimension)
    {
        if (layers <= 0) throw new ArgumentOutOfRangeException(nameof(layers), layers, "A planar flow needs at least one layer (K ≥ 1).");
        if (!(initScale > 0) || double.IsInfinity(initScale)) throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "initScale must be positive and finite.");
        Layers = layers;
        w = new TorchSharp.Modules.Parameter(torch.randn(layers, dimension, generator: generator).mul_(initScale));
        u = new TorchSharp.Modules.Parameter(torch.randn(layers, dimension, generator: generator).mul_(initScale));
        b = new TorchSharp.Modules.Parameter(torch.randn(layers, generator: generator).mul_(initScale));
        RegisterComponents();
    }

    /// <summary>K.</summary>
    public int Layers { get; }

    /// <summary>Returns (û [K, d], wᵀû [K]).</summary>
    private (Tensor UHat, Tensor WTUHat) ConstrainedU()
    {
        var wtu = (w * u).sum(1);
        var m = nn.functional.softplus(wtu) - 1;
        var uHat = u + ((m - wtu) / w.square().sum(1)).unsqueeze(1) * w;
        return (uHat, m); // wᵀû = wᵀu + (m − wᵀu) = m
    }

    /// <summary>
    /// Stacks with B·d·K up to this size run as one fused CPU node (<see cref="PlanarKernel"/>); larger
    /// ones, and every non-CPU device, use tensor operations (where per-op overhead no longer dominates).
    /// </summary>
    internal const long FusedKernelMaxWork = 1L << 22;

    /// <summary>Forces the op-by-op path (tests compare it with the fused kernel).</summary>
    internal bool DisableFusedKernel { get; set; }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        var (uHat, wtuHat) = ConstrainedU();
        bool fused = !DisableFusedKernel && input.device.type == DeviceType.CPU
                     && input.shape[0] * Dimension * Layers <= FusedKernelMaxWork
                     && (input.dtype == ScalarType.Float32 || input.dtype == ScalarType.Float64);
        if (fused)
        {
            var outputs = PlanarKernel.apply(input, w, uHat, b, wtuHat);
            return (outputs[0], outputs[1]);
        }
        return ForwardByOperations(input, uHat, wtuHat);
    }

    private (Tensor Output, Tensor LogAbsDetJacobian) ForwardByOperations(Tensor input, Tensor uHat, Tensor wtuHat)
    {
        var ws = w.unbind(0);
        var us = uHat.unbind(0);
        var bs = b.unbind(0);
        var hs = new Tensor[Layers];
        var z = input;
        for (int k = 0; k < Layers; k++)
        {
            var h = torch.addmv(bs[k], z, ws[k], 1, 1).tanh_();   // tanh(wᵀz + b), [B]
            hs[k] = h;
            z = torch.addr(z, h, us[k]);                           // z + h ûᵀ
        }
        // log det_k = log(1 + (1 − h_k²) wᵀû_k), all layers at once: [B, K] → [B].
        var h2 = torch.stack(hs, 1).square();
        var logDet = torch.log1p((1 - h2) * wtuHat).sum(1);
        return (z, logDet);
    }

    public override bool HasInverse => true;

    /// <summary>
    /// Numerical inverse (no closed form exists): for each layer, from y = z + û tanh(wᵀz + b) the scalar
    /// a = wᵀz solves a + wᵀû tanh(a + b) = wᵀy, which is strictly increasing in a and lies within
    /// |wᵀû| of wᵀy; it is found by bisection to machine precision, then z = y − û tanh(a + b).
    /// </summary>
    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        using var noGrad = torch.no_grad();
        // Solved in float64 whatever the input's dtype: the root is then exact to float32 rounding of the result.
        var (uHat, wtuHat) = ConstrainedU();
        uHat = uHat.to(ScalarType.Float64);
        wtuHat = wtuHat.to(ScalarType.Float64);
        var w64 = w.to(ScalarType.Float64);
        var b64 = b.to(ScalarType.Float64);
        var y = input.to(ScalarType.Float64);
        var logDet = torch.zeros(input.shape[0], dtype: ScalarType.Float64, device: input.device);
        const int iterations = 64;
        for (int k = Layers - 1; k >= 0; k--)
        {
            var wk = w64[k];
            var bk = b64[k];
            var m = wtuHat[k];
            var target = torch.mv(y, wk);
            var spread = m.abs() + 1e-12;
            var lo = target - spread;
            var hi = target + spread;
            for (int i = 0; i < iterations; i++)
            {
                var mid = (lo + hi) * 0.5;
                var tooHigh = (mid + m * torch.tanh(mid + bk)) > target;
                hi = torch.where(tooHigh, mid, hi);
                lo = torch.where(tooHigh, lo, mid);
            }
            var a = (lo + hi) * 0.5;
            var h = torch.tanh(a + bk);
            y = y - h.unsqueeze(1) * uHat[k];
            logDet = logDet - torch.log1p((1 - h.square()) * m);
        }
        return (y.to(input.dtype), logDet.to(input.dtype));
    }
}
