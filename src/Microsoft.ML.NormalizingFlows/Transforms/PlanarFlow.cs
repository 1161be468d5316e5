using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// K planar layers (Rezende &amp; Mohamed 2015): f(z) = z + û tanh(wᵀz + b), applied K times.
/// <para>
/// Invertibility needs wᵀû ≥ −1. It is enforced differentiably with û = u + (m(wᵀu) − wᵀu) w / ‖w‖²,
/// where m maps R onto (−1, ∞), so wᵀû = m(wᵀu) &gt; −1 and det J = 1 + (1 − tanh²(wᵀz + b)) wᵀû &gt; 0
/// exactly: no epsilon inside the log. Two choices of m (<see cref="PlanarConstraint"/>):
/// Rezende &amp; Mohamed's −1 + softplus(x), and the default, which is the identity wherever the constraint
/// is slack (x ≥ −0.9) and bends smoothly (C¹) towards −1 below.
/// </para>
/// <para>
/// The K layers' parameters are stacked ([K, d], [K]); on CPU the whole stack runs as one fused autograd
/// node (<see cref="PlanarKernel"/>): with small flows the per-operation overhead, not arithmetic, sets the speed.
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
    /// <param name="constraint">How û is derived from u (see <see cref="PlanarConstraint"/>).</param>
    public PlanarFlow(int dimension, int layers, double initScale = 0.1, Generator? generator = null,
        PlanarConstraint constraint = PlanarConstraint.IdentityWhereSlack)
        : base(nameof(PlanarFlow), dimension)
    {
        if (!Enum.IsDefined(constraint)) throw new ArgumentOutOfRangeException(nameof(constraint), constraint, "Unknown planar constraint.");
        Constraint = constraint;
        if (layers <= 0) throw new ArgumentOutOfRangeException(nameof(layers), layers, "A planar flow needs at least one layer (K ≥ 1).");
        if (!(initScale > 0) || double.IsInfinity(initScale)) throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "initScale must be positive and finite.");
        Layers = layers;
        var wInit = torch.randn(layers, dimension, generator: generator).mul_(S(initScale));
        var uInit = torch.randn(layers, dimension, generator: generator).mul_(S(initScale));
        if (constraint == PlanarConstraint.Softplus)
        {
            // Start near the identity. With small w, û's component along w is (m(wᵀu) − wᵀu)/‖w‖, large
            // unless m(wᵀu) ≈ wᵀu, so a random u would make every initial layer contract by ≈ 0.7 along w
            // (measured: KL 0.73 instead of 0.11 after the seed's 20,000 steps on the ring). Moving u along w so
            // that wᵀu = softplus⁻¹(1) gives wᵀû = 0: û is u's part orthogonal to w, a small shear.
            var wtu = (wInit * uInit).sum(1);
            uInit.PlusInPlace((wtu.SubtractedFrom(Math.Log(Math.E - 1)) / wInit.Squared().sum(1)).unsqueeze(1) * wInit);
        }
        w = new TorchSharp.Modules.Parameter(wInit);
        u = new TorchSharp.Modules.Parameter(uInit);
        b = new TorchSharp.Modules.Parameter(torch.randn(layers, generator: generator).mul_(S(initScale)));
        RegisterComponents();
    }

    /// <summary>K.</summary>
    public int Layers { get; }

    public PlanarConstraint Constraint { get; }

    /// <summary>δ of <see cref="PlanarConstraint.IdentityWhereSlack"/>: m is the identity on [−1 + δ, ∞).</summary>
    /// (Measured on the seed's ring experiment: δ = 0.1 and 0.5 end at the same KL; 0.1 lets layers contract
    /// strongly, as a ring's hole needs, with an unbent gradient.)
    private const double SlackDelta = PlanarKernel.SlackDelta;
    private const double SlackKnee = -1 + SlackDelta;

    /// <summary>Returns (û [K, d], wᵀû [K]).</summary>
    private (Tensor UHat, Tensor WTUHat) ConstrainedU()
    {
        var wtu = (w * u).sum(1);
        var m = Constraint == PlanarConstraint.Softplus
            ? wtu.Softplus() - S(1)
            // x for x ≥ −1 + δ; −1 + δ²/(2δ − 1 − x) below (value and slope 1 match at the knee). The reciprocal
            // tail nears −1 only polynomially, so m stays > −1 in float32 for any realistic wᵀu (an exponential
            // tail rounds to −1, det J = 0, within a few units). The clamp keeps the unused branch finite.
            : torch.where(wtu.ge(S(SlackKnee)), wtu, S(SlackDelta * SlackDelta) / wtu.clamp_max(S(SlackKnee)).SubtractedFrom(2 * SlackDelta - 1) - S(1));
        var uHat = u.Plus(((m - wtu) / w.Squared().sum(1)).unsqueeze(1) * w);
        return (uHat, m); // wᵀû = wᵀu + (m − wᵀu) = m
    }

    /// <summary>
    /// Stacks with B·d·K up to this size run as one fused CPU node (<see cref="PlanarKernel"/>); larger
    /// ones, and every non-CPU device, use tensor operations (where per-op overhead no longer dominates).
    /// </summary>
    internal const long FusedKernelMaxWork = 1L << 22;

    /// <summary>Forces the op-by-op path (tests compare it with the fused kernel).</summary>
    internal bool DisableFusedKernel { get; set; }

    private bool Fused(Tensor input) => !DisableFusedKernel && input.device.type == DeviceType.CPU
                                        && input.shape[0] * Dimension * Layers <= FusedKernelMaxWork
                                        && input.dtype is ScalarType.Float32 or ScalarType.Float64;

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        if (Fused(input))
        {
            var outputs = PlanarKernel.apply(input, w, u, b, Constraint);
            return (outputs[0], outputs[1]);
        }
        var (uHat, wtuHat) = ConstrainedU();
        return ForwardByOperations(input, uHat, wtuHat);
    }

    /// <summary>On CPU the score comes out of the same compiled pass as the sample: no second pass over the layers.</summary>
    internal override (Tensor Output, Tensor LogAbsDetJacobian, Tensor? OutputScore) ForwardWithScore(Tensor input, Tensor inputScore)
    {
        CheckInput(input);
        CheckInput(inputScore, nameof(inputScore));
        if (!Fused(input)) return base.ForwardWithScore(input, inputScore);
        var outputs = PlanarKernel.apply(input, w, u, b, Constraint, inputScore); // the kernel never differentiates the score
        return (outputs[0], outputs[1], outputs[2].detach());
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
        var h2 = torch.stack(hs, 1).Squared();
        var logDet = torch.log1p(h2.SubtractedFrom(1) * wtuHat).sum(1);
        return (z, logDet);
    }

    /// <summary>
    /// Layer by layer, with J = I + h′ û wᵀ (h′ = 1 − tanh²) and log|det J| = log(1 + h′ m): subtract
    /// ∇ log|det J| = −2 h h′ m / (1 + h′ m) · w, then apply J⁻ᵀ = I − h′ w ûᵀ / (1 + h′ m) (Sherman–Morrison;
    /// ûᵀw = m). O(K d) per draw, and no inverse needed. On CPU one compiled pass; elsewhere tensor operations.
    /// </summary>
    internal override Tensor? PushScore(Tensor input, Tensor inputScore)
    {
        CheckInput(input);
        CheckInput(inputScore, nameof(inputScore));
        using var noGrad = torch.no_grad();
        if (Fused(input)) return PlanarKernel.PushScore(input, inputScore, w, u, b, Constraint);
        var (uHat, m) = ConstrainedU();
        var z = input;
        var score = inputScore;
        for (int k = 0; k < Layers; k++)
        {
            var (wk, uk, mk) = (w[k], uHat[k], m[k]);
            var h = torch.addmv(b[k], z, wk, 1, 1).tanh_();
            var slope = h.Squared().SubtractedFrom(1);                     // h′
            var term = (slope * mk).Plus(1);                               // 1 + h′ m = det J
            var shifted = score.Plus(torch.outer(h * slope * mk * S(2) / term, wk)); // s − ∇ log|det J|
            score = shifted - torch.outer(slope / term * torch.mv(shifted, uk), wk);
            z = torch.addr(z, h, uk);
        }
        return score;
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
            var spread = m.abs().Plus(1e-12);
            var lo = target - spread;
            var hi = target.Plus(spread);
            for (int i = 0; i < iterations; i++)
            {
                var mid = lo.Plus(hi) * S(0.5);
                var tooHigh = mid.Plus(m * torch.tanh(mid.Plus(bk))) > target;
                hi = torch.where(tooHigh, mid, hi);
                lo = torch.where(tooHigh, lo, mid);
            }
            var a = lo.Plus(hi) * S(0.5);
            var h = torch.tanh(a.Plus(bk));
            y = y - h.unsqueeze(1) * uHat[k];
            logDet = logDet - torch.log1p(h.Squared().SubtractedFrom(1) * m);
        }
        return (y.to(input.dtype), logDet.to(input.dtype));
    }
}

/// <summary>The map m: R → (−1, ∞) that keeps each planar layer invertible through wᵀû = m(wᵀu).</summary>
public enum PlanarConstraint
{
    /// <summary>
    /// m(x) = x for x ≥ −0.9 and −1 + 0.01/(−0.8 − x) below (value and slope match at the knee): û = u exactly while the constraint is slack, as in the
    /// seed's experiment (which projects u only when wᵀu &lt; −1, but in place and outside autograd). Default:
    /// measured on the seed's ring experiment (planar K = 32, Adam 6e-4, 20,000 steps), KL 0.02–0.03 over
    /// three seeds, against 0.11–0.40 for <see cref="Softplus"/>, whose û is stiff in w when ‖w‖ is small.
    /// </summary>
    IdentityWhereSlack,

    /// <summary>Rezende &amp; Mohamed's m(x) = −1 + softplus(x).</summary>
    Softplus,
}
