using System.Numerics;
using System.Runtime.CompilerServices;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.NormalizingFlows.Tensors.HostMemory;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// The whole K-layer planar stack, constraint included, as ONE autograd node with a hand-written forward and
/// backward in C# (CPU only). Small flows are bound by per-operation overhead, not arithmetic: the op-by-op
/// version issues ~11 tensor operations per layer per step (forward and backward) and about 15 more for the
/// constraint û(w, u); this issues a handful in all.
/// Inputs: z₀ [B, d], raw w [K, d], u [K, d], b [K], the <see cref="PlanarConstraint"/>, and optionally the score
/// ∇ log q₀ at z₀ [B, d]. Outputs: z_K [B, d], Σ log det [B], and with a score input the score at z_K
/// (<see cref="PlanarFlow.PushScore"/>; not differentiable). Its gradients are checked against autograd of the
/// op-by-op path in the tests.
/// </summary>
internal sealed class PlanarKernel : autograd.MultiTensorFunction<PlanarKernel>
{
    public override string Name => "PlanarFlowStack";

    /// <summary>û and wᵀû = m(wᵀu) per layer, with what the backward pass needs of the map.</summary>
    private sealed class Constrained
    {
        public required double[] UHat, M, Slope, Shift, NormSquared; // Slope = m′(wᵀu), Shift = (m − wᵀu)/‖w‖²
    }

    /// <summary>
    /// What the backward pass needs. The pass keeps draws innermost and padded to whole vectors (structure of arrays:
    /// element j of draw i at j·P + i, P = B rounded up to whole vectors, <see cref="HostMemory.PaddedToLanes"/>), so that each layer is a few vector
    /// operations per block of draws, the exponentials and logarithms included: with draws outermost, Math.Tanh and
    /// Math.Log one element at a time were most of a small flow's training step.
    /// </summary>
    private sealed class Saved
    {
        public required double[] Z;      // z_{k} for k = 0..K−1 (the input of each layer), [K, d, P]
        public required double[] H;      // tanh(a_k), [K, P]
        public required double[] W, U;
        public required Constrained C;
        public required int B, D, K, P;
        public required bool HasScoreInput;
        public required ScalarType DType;
        public required Device Device;
    }

    /// <summary>Layers whose dets are multiplied before one logarithm (see <see cref="Pass"/>).</summary>
    private const int FoldEvery = 8;

    /// <summary>δ of <see cref="PlanarConstraint.IdentityWhereSlack"/>: m is the identity on [−1 + δ, ∞).</summary>
    internal const double SlackDelta = 0.1;

    /// <summary>m(x) and m′(x) for the constraint (see <see cref="PlanarConstraint"/>).</summary>
    internal static (double M, double Slope) Map(double x, PlanarConstraint constraint)
    {
        if (constraint == PlanarConstraint.Softplus)
        {
            double softplus = x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x));
            return (softplus - 1, 1 / (1 + Math.Exp(-x)));
        }
        if (x >= SlackDelta - 1) return (x, 1);
        double t = 2 * SlackDelta - 1 - x;               // > δ below the knee
        return (SlackDelta * SlackDelta / t - 1, SlackDelta * SlackDelta / (t * t));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // loops called a few times per step: tiering would leave them unoptimized for long
    private static Constrained Constrain(double[] w, double[] u, int k, int d, PlanarConstraint constraint)
    {
        var c = new Constrained { UHat = new double[k * d], M = new double[k], Slope = new double[k], Shift = new double[k], NormSquared = new double[k] };
        for (int layer = 0; layer < k; layer++)
        {
            int o = layer * d;
            double wtu = 0, n = 0;
            for (int j = 0; j < d; j++) { wtu += w[o + j] * u[o + j]; n += w[o + j] * w[o + j]; }
            var (m, slope) = Map(wtu, constraint);
            double shift = (m - wtu) / n;
            for (int j = 0; j < d; j++) c.UHat[o + j] = u[o + j] + shift * w[o + j];
            (c.M[layer], c.Slope[layer], c.Shift[layer], c.NormSquared[layer]) = (m, slope, shift, n);
        }
        return c;
    }

    public override List<Tensor> forward(autograd.AutogradContext ctx, params object[] vars)
    {
        var z0 = (Tensor)vars[0];
        var constraint = (PlanarConstraint)vars[4];
        var scoreIn = vars.Length > 5 ? vars[5] as Tensor : null;
        var (z, logDet, score, saved) = Pass(z0, (Tensor)vars[1], (Tensor)vars[2], (Tensor)vars[3], constraint, scoreIn, save: true);
        ctx.save_data("s", saved!);
        ctx.set_materialize_grads(false); // an unused output's gradient stays undefined instead of a tensor of zeros
        var outputs = new List<Tensor> { ToTensor(z, saved!.B, saved.D, saved.P, z0), torch.tensor(logDet.AsSpan(0, saved.B).ToArray(), new long[] { saved.B }, dtype: z0.dtype, device: z0.device) };
        if (score is not null) outputs.Add(ToTensor(score, saved.B, saved.D, saved.P, z0));
        return outputs;
    }

    /// <summary>
    /// ∇_z log q at the stack's output from the score at its input, parameters constant, outside autograd.
    /// </summary>
    public static Tensor PushScore(Tensor z0, Tensor score0, Tensor w, Tensor u, Tensor b, PlanarConstraint constraint)
    {
        var (_, _, score, _) = Pass(z0, w, u, b, constraint, score0, save: false);
        int bsz = (int)z0.shape[0], d = (int)z0.shape[1];
        return ToTensor(score!, bsz, d, PaddedToLanes(bsz), z0);
    }

    /// <summary>
    /// The layers in order, a block of draws at a time. With a score: s ← s − ∇ log|det J| = s + 2 h h′ m / (1 + h′ m) · w,
    /// then s ← J⁻ᵀ s = s − h′ (ûᵀs) / (1 + h′ m) · w (Sherman–Morrison, ûᵀw = m), with h′ = 1 − h².
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // loops called a few times per step: tiering would leave them unoptimized for long
    private static (double[] Z, double[] LogDet, double[]? Score, Saved? Saved) Pass(Tensor z0, Tensor wT, Tensor uT, Tensor bT,
        PlanarConstraint constraint, Tensor? scoreIn, bool save)
    {
        int bsz = (int)z0.shape[0], d = (int)z0.shape[1], k = (int)wT.shape[0], p = PaddedToLanes(bsz);
        var z = Transposed(z0, bsz, d, p);
        var s = scoreIn is null ? null : Transposed(scoreIn, bsz, d, p);
        var w = ToDoubles(wT);
        var u = ToDoubles(uT);
        var b = ToDoubles(bT);
        var c = Constrain(w, u, k, d, constraint);
        var zs = save ? new double[k * d * p] : null;
        var hs = save ? new double[k * p] : null;
        var logDet = new double[p];
        // Σ log det over layers as log Π det, the product folded into the sum every few layers: one logarithm per block
        // of layers instead of one per layer. Each det lies in (0, ∞); FoldEvery factors cannot under- or overflow unless
        // a single layer's det is beyond 1e±38, where the flow is unusable anyway.
        var product = new double[p];
        Array.Fill(product, 1.0);
        var two = new Vector<double>(2.0);
        for (int layer = 0; layer < k; layer++)
        {
            bool fold = (layer + 1) % FoldEvery == 0 || layer == k - 1;
            if (zs is not null) Array.Copy(z, 0, zs, layer * d * p, d * p);
            int wo = layer * d;
            var m = new Vector<double>(c.M[layer]);
            for (int lane = 0; lane < p; lane += Lanes)
            {
                var a = new Vector<double>(b[layer]);
                for (int j = 0; j < d; j++) a += w[wo + j] * Load(z, j * p + lane);
                var h = Tanh(a);
                var slope = Vector<double>.One - h * h;
                var term = Vector<double>.One + slope * m;
                if (hs is not null) h.CopyTo(hs, layer * p + lane);
                if (s is not null)
                {
                    var inverse = Vector<double>.One / term;
                    var shift = two * h * slope * m * inverse;
                    var uTs = Vector<double>.Zero;
                    for (int j = 0; j < d; j++)
                    {
                        var sj = Load(s, j * p + lane) + shift * w[wo + j];
                        sj.CopyTo(s, j * p + lane);
                        uTs += c.UHat[wo + j] * sj;
                    }
                    var back = slope * uTs * inverse;
                    for (int j = 0; j < d; j++) (Load(s, j * p + lane) - back * w[wo + j]).CopyTo(s, j * p + lane);
                }
                for (int j = 0; j < d; j++) (Load(z, j * p + lane) + h * c.UHat[wo + j]).CopyTo(z, j * p + lane);
                var det = Load(product, lane) * term;
                if (fold)
                {
                    (Load(logDet, lane) + Vector.Log(det)).CopyTo(logDet, lane);
                    det = Vector<double>.One;
                }
                det.CopyTo(product, lane);
            }
        }
        var saved = save ? new Saved { Z = zs!, H = hs!, W = w, U = u, C = c, B = bsz, D = d, K = k, P = p, HasScoreInput = scoreIn is not null, DType = z0.dtype, Device = z0.device } : null;
        return (z, logDet, s, saved);
    }

    /// <summary>tanh(a) = sign(a) (1 − e)/(1 + e) with e = exp(−2|a|) ≤ 1: no overflow for any a.</summary>
    private static Vector<double> Tanh(Vector<double> a)
    {
        var e = Vector.Exp(-2.0 * Vector.Abs(a));
        var t = (Vector<double>.One - e) / (Vector<double>.One + e);
        return Vector.ConditionalSelect(Vector.LessThan(a, Vector<double>.Zero), -t, t);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public override List<Tensor> backward(autograd.AutogradContext ctx, List<Tensor> gradOutputs)
    {
        var s = (Saved)ctx.get_data("s");
        int bsz = s.B, d = s.D, k = s.K, p = s.P;
        var c = s.C;
        var gz = IsDefined(gradOutputs[0]) ? Transposed(gradOutputs[0], bsz, d, p) : new double[d * p];
        var gl = IsDefined(gradOutputs[1]) ? Transposed(gradOutputs[1], bsz, 1, p) : new double[p];
        var gw = new double[k * d];
        var gUHat = new double[k * d];
        var gb = new double[k];
        var gm = new double[k];
        var sumW = new Vector<double>[d];
        var sumUHat = new Vector<double>[d];
        var minusTwo = new Vector<double>(-2.0);
        for (int layer = k - 1; layer >= 0; layer--)
        {
            int wo = layer * d, zo = layer * d * p;
            var m = new Vector<double>(c.M[layer]);
            Array.Clear(sumW);
            Array.Clear(sumUHat);
            Vector<double> sumB = Vector<double>.Zero, sumM = Vector<double>.Zero;
            for (int lane = 0; lane < p; lane += Lanes)
            {
                var h = Load(s.H, layer * p + lane);
                var slope = Vector<double>.One - h * h;
                var perTerm = Load(gl, lane) / (Vector<double>.One + slope * m);   // ∂L/∂log det ÷ det
                // ∂L/∂h from z_k = z_{k−1} + h û and from log(1 + (1 − h²) m).
                var gh = perTerm * minusTwo * h * m;
                for (int j = 0; j < d; j++)
                {
                    var gzj = Load(gz, j * p + lane);
                    gh += gzj * c.UHat[wo + j];
                    sumUHat[j] += gzj * h;
                }
                sumM += perTerm * slope;
                var ga = gh * slope;
                sumB += ga;
                for (int j = 0; j < d; j++)
                {
                    sumW[j] += ga * Load(s.Z, zo + j * p + lane);
                    (Load(gz, j * p + lane) + ga * s.W[wo + j]).CopyTo(gz, j * p + lane);
                }
            }
            gb[layer] = Vector.Sum(sumB);
            gm[layer] = Vector.Sum(sumM);
            for (int j = 0; j < d; j++)
            {
                gw[wo + j] = Vector.Sum(sumW[j]);
                gUHat[wo + j] = Vector.Sum(sumUHat[j]);
            }
        }
        // Through the constraint û = u + c w, c = (m(x) − x)/n, x = wᵀu, n = ‖w‖², with G = gûᵀw:
        // ∂/∂u = gû + A w and ∂/∂w (beyond the direct term) = c gû + A u − 2 G c / n · w, where A = G (m′ − 1)/n + g_m m′.
        var gu = new double[k * d];
        for (int layer = 0; layer < k; layer++)
        {
            int o = layer * d;
            double g = 0;
            for (int j = 0; j < d; j++) g += gUHat[o + j] * s.W[o + j];
            double n = c.NormSquared[layer], shift = c.Shift[layer], slope = c.Slope[layer];
            double a = g * (slope - 1) / n + gm[layer] * slope;
            for (int j = 0; j < d; j++)
            {
                gu[o + j] = gUHat[o + j] + a * s.W[o + j];
                gw[o + j] += shift * gUHat[o + j] + a * s.U[o + j] - 2 * g * shift / n * s.W[o + j];
            }
        }
        var gradients = new List<Tensor>
        {
            ToTensor(gz, bsz, d, p, s), Make(gw, new long[] { k, d }, s), Make(gu, new long[] { k, d }, s), Make(gb, new long[] { k }, s), null!,
        };
        if (s.HasScoreInput) gradients.Add(null!); // the input score: not differentiated
        return gradients;
    }

    private static bool IsDefined(Tensor? t) => t is not null && !t.IsInvalid;

    private static Tensor Make(double[] values, long[] shape, Saved s) => torch.tensor(values, shape, dtype: s.DType, device: s.Device);

    /// <summary>A [B, d] CPU tensor (or [B] with d = 1) as float64 with draws innermost: element j of draw i at j·P + i, padding 0.</summary>
    private static double[] Transposed(Tensor t, int bsz, int d, int p)
    {
        using var noGrad = torch.no_grad();
        using var contiguous = t.is_contiguous() ? null : t.contiguous();
        var source = contiguous ?? t;
        var result = new double[d * p];
        if (t.dtype == ScalarType.Float64)
        {
            var values = HostMemory.Elements<double>(source);
            for (int i = 0; i < bsz; i++)
                for (int j = 0; j < d; j++) result[j * p + i] = values[i * d + j];
        }
        else
        {
            var values = HostMemory.Elements<float>(source);
            for (int i = 0; i < bsz; i++)
                for (int j = 0; j < d; j++) result[j * p + i] = values[i * d + j];
        }
        GC.KeepAlive(source);
        return result;
    }

    /// <summary>Draws-innermost values back to a [B, d] tensor in the type and on the device of <paramref name="like"/>.</summary>
    private static Tensor ToTensor(double[] transposed, int bsz, int d, int p, Tensor like) => ToTensor(transposed, bsz, d, p, like.dtype, like.device);

    private static Tensor ToTensor(double[] transposed, int bsz, int d, int p, Saved s) => ToTensor(transposed, bsz, d, p, s.DType, s.Device);

    private static Tensor ToTensor(double[] transposed, int bsz, int d, int p, ScalarType dtype, Device device)
    {
        var rows = new double[bsz * d];
        for (int i = 0; i < bsz; i++)
            for (int j = 0; j < d; j++) rows[i * d + j] = transposed[j * p + i];
        return torch.tensor(rows, new long[] { bsz, d }, dtype: dtype, device: device);
    }

    /// <summary>A copy of a CPU tensor's elements in float64 (the pass computes in float64 whatever the inputs' type).</summary>
    private static double[] ToDoubles(Tensor t)
    {
        using var noGrad = torch.no_grad();
        using var contiguous = t.is_contiguous() ? null : t.contiguous();
        var source = contiguous ?? t;
        if (t.dtype == ScalarType.Float64) return HostMemory.Elements<double>(source).ToArray();
        var floats = HostMemory.Elements<float>(source);
        var result = new double[floats.Length];
        for (int i = 0; i < floats.Length; i++) result[i] = floats[i];
        GC.KeepAlive(source);
        return result;
    }
}
