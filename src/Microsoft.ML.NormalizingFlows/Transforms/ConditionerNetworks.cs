using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// A linear layer whose weight is multiplied by a fixed 0/1 mask (a buffer, so it follows the module's
/// dtype and device). With an all-ones mask it is an ordinary linear layer.
/// </summary>
internal sealed class MaskedLinear : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Tensor mask;
    private readonly bool dense;   // the mask is all ones: not multiplied in

    /// <param name="inFeatures">Inputs.</param>
    /// <param name="outFeatures">Outputs.</param>
    /// <param name="mask">[out, in] of 0/1 (null: all ones).</param>
    /// <param name="zeroInit">Start with zero weight and bias (the layer outputs 0).</param>
    /// <param name="generator">Draws the initial weights (null: TorchSharp's global generator).</param>
    public MaskedLinear(int inFeatures, int outFeatures, Tensor? mask, bool zeroInit, Generator? generator) : base(nameof(MaskedLinear))
    {
        // nn.Linear's default: U(−1/√in, 1/√in) for weight and bias.
        double bound = 1.0 / Math.Sqrt(Math.Max(1, inFeatures));
        weight = new Parameter(zeroInit
            ? torch.zeros(outFeatures, inFeatures)
            : torch.rand(outFeatures, inFeatures, generator: generator).mul_(S(2 * bound)).sub_(S(bound)));
        bias = new Parameter(zeroInit
            ? torch.zeros(outFeatures)
            : torch.rand(outFeatures, generator: generator).mul_(S(2 * bound)).sub_(S(bound)));
        // The all-ones mask stays a buffer (saved flows keep their layout) but is never multiplied in: a dense layer
        // (every coupling conditioner) then costs one operation, not two, forward and backward.
        dense = mask is null;
        this.mask = mask ?? torch.ones(outFeatures, inFeatures);
        register_buffer("mask", this.mask);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => nn.functional.linear(input, dense ? weight : weight * mask, bias);
}

/// <summary>
/// A conditioner network: input → width (linear), then <c>depth</c> residual blocks
/// h ← h + W₂ act(W₁ act(h)), then width → output. With masks built from MADE degrees
/// (Germain et al. 2015) the network is autoregressive: output unit of degree i sees only inputs of
/// degree &lt; i. Hidden-to-hidden masks connect units of degree ≥, so the residual sums keep that property.
/// With all-ones masks it is a plain residual MLP (the coupling conditioner).
/// The last layer can start at zero, so the transform it drives starts as the identity.
/// </summary>
internal sealed class ResidualNetwork : nn.Module<Tensor, Tensor>
{
    private readonly MaskedLinear input;
    private readonly ModuleList<MaskedLinear> blocks;
    private readonly MaskedLinear output;

    private ResidualNetwork(MaskedLinear input, IEnumerable<MaskedLinear> blocks, MaskedLinear output) : base(nameof(ResidualNetwork))
    {
        this.input = input;
        this.blocks = new ModuleList<MaskedLinear>(blocks.ToArray());
        this.output = output;
        RegisterComponents();
    }

    /// <summary>A plain residual MLP in → out.</summary>
    public static ResidualNetwork Dense(int inFeatures, int outFeatures, int width, int depth, bool zeroLastLayer, Generator? generator)
    {
        Validate(width, depth);
        var first = new MaskedLinear(inFeatures, width, null, false, generator);
        var hidden = new List<MaskedLinear>();
        for (int i = 0; i < 2 * depth; i++) hidden.Add(new MaskedLinear(width, width, null, false, generator));
        var last = new MaskedLinear(width, outFeatures, null, zeroLastLayer, generator);
        return new ResidualNetwork(first, hidden, last);
    }

    /// <summary>
    /// A MADE network for d inputs and <paramref name="paramsPerDimension"/> outputs per input, laid out
    /// [d, P] (output i·P + p conditions dimension i on inputs 0..i−1 in the given order).
    /// For d = 1 the hidden units have degree 0 and see no input, so the outputs are learned constants.
    /// </summary>
    public static ResidualNetwork Made(int dimension, int paramsPerDimension, int width, int depth, bool zeroLastLayer, Generator? generator)
    {
        Validate(width, depth);
        var inDeg = Enumerable.Range(1, dimension).ToArray();
        var hidDeg = Enumerable.Range(0, width).Select(k => dimension > 1 ? k % (dimension - 1) + 1 : 0).ToArray();
        var outDeg = Enumerable.Range(0, dimension * paramsPerDimension).Select(o => o / paramsPerDimension + 1).ToArray();
        var inMask = MaskOf(hidDeg, inDeg, (h, i) => h >= i);
        var hidMask = MaskOf(hidDeg, hidDeg, (h2, h1) => h2 >= h1);
        var outMask = MaskOf(outDeg, hidDeg, (o, h) => o > h);
        var first = new MaskedLinear(dimension, width, inMask, false, generator);
        var hidden = new List<MaskedLinear>();
        for (int i = 0; i < 2 * depth; i++) hidden.Add(new MaskedLinear(width, width, hidMask.clone(), false, generator));
        var last = new MaskedLinear(width, dimension * paramsPerDimension, outMask, zeroLastLayer, generator);
        return new ResidualNetwork(first, hidden, last);
    }

    private static Tensor MaskOf(int[] outDeg, int[] inDeg, Func<int, int, bool> connected)
    {
        var values = new float[outDeg.Length * inDeg.Length];
        for (int o = 0; o < outDeg.Length; o++)
            for (int i = 0; i < inDeg.Length; i++)
                values[o * inDeg.Length + i] = connected(outDeg[o], inDeg[i]) ? 1f : 0f;
        return torch.tensor(values).reshape(outDeg.Length, inDeg.Length);
    }

    private static void Validate(int width, int depth)
    {
        if (width <= 0) throw new ArgumentOutOfRangeException(nameof(width), width, "The conditioner width must be positive.");
        if (depth < 0) throw new ArgumentOutOfRangeException(nameof(depth), depth, "The number of residual blocks must be ≥ 0.");
    }

    public override Tensor forward(Tensor x)
    {
        var h = input.forward(x);
        for (int i = 0; i < blocks.Count; i += 2)
        {
            var r = blocks[i].forward(torch.tanh(h));
            h = h.Plus(blocks[i + 1].forward(torch.tanh(r)));
        }
        return output.forward(torch.tanh(h));
    }
}
