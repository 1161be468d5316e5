using System.Runtime.CompilerServices;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>The C# example in docs/flows.md compiles and runs: it is this test's code, and the test checks the two stay equal.</summary>
[TestClass]
public sealed class FlowCatalogueDocTests
{
    private const string Begin = "// docs/flows.md example: begin";
    private const string End = "// docs/flows.md example: end";

    [TestMethod]
    public void BuilderExampleRunsAndSamplesConsistently()
    {
        // docs/flows.md example: begin
        // A banana-shaped posterior in d = 2: its unnormalized log density, [B, 2] → [B].
        Target banana = Target.FromDelegate("banana", 2,
            z => -0.5 * (z[.., 0].square() / 4 + (z[.., 1] - 0.5 * z[.., 0].square()).square()));

        // Sampling order (base → target): ActNorm → spline coupling → LU → IAF, on a Student-t base.
        FlowDistribution q = new FlowBuilder(2, seed: 1)
            .WithBase(new StudentT(2, degreesOfFreedom: 5))    // heavy tails; ν is learned
            .ActNorm()                                          // initialized from the first training batch
            .SplineCoupling(bins: 8, bound: 5, hiddenWidth: 32) // keeps the first half; a next coupling flips it
            .LULinear()                                         // learnable mixing of all coordinates
            .Iaf(hiddenWidth: 32)                               // one-pass sampling: the reverse-KL VI direction
            .Build();

        FitResult fit = VariationalTrainer.Fit(q, banana,
            new TrainerOptions { Iterations = 300, BatchSize = 128, LearningRate = 5e-3, Seed = 1 });

        // Draws and their log q from one forward pass; LogProb evaluates log q anywhere (inverse pass).
        var (z, logQ) = q.Sample(1000, new torch.Generator(7));
        torch.Tensor same = q.LogProb(z);   // equals logQ up to rounding

        // A preset by name instead; q2.Spec rebuilds it (FlowSerializer saves spec + weights).
        FlowDistribution q2 = FlowFactory.Create("nsf-coupling", dimension: 2, layers: 4, seed: 1,
            settings: new Dictionary<string, string> { ["bins"] = "16", ["base"] = "student-t", ["permutation"] = "lu" });
        // docs/flows.md example: end

        Assert.IsFalse(fit.Diverged);
        Assert.IsTrue(double.IsFinite(fit.BestSmoothedElbo));
        FlowTestHelpers.AssertClose(logQ.detach(), same.detach(), 1e-3, "log q from Sample vs LogProb");
        Assert.AreEqual("nsf-coupling", q2.Spec!.Preset);
        Assert.IsTrue(q2.Base is StudentT);
    }

    [TestMethod]
    public void TheDocumentedExampleIsThisTestsCode()
    {
        string testFile = ThisFile();
        string root = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(testFile)!, "..", ".."));
        string doc = File.ReadAllText(Path.Combine(root, "docs", "flows.md"));
        int start = doc.IndexOf("```csharp", StringComparison.Ordinal);
        Assert.IsTrue(start >= 0, "docs/flows.md has a ```csharp block");
        start = doc.IndexOf('\n', start) + 1;
        var docLines = Lines(doc[start..doc.IndexOf("```", start, StringComparison.Ordinal)]);

        string source = File.ReadAllText(testFile);
        int from = source.IndexOf(Begin + "\n", StringComparison.Ordinal) + Begin.Length + 1;
        var codeLines = Lines(source[from..source.IndexOf("        " + End, from, StringComparison.Ordinal)]);

        // The doc's using directives are in effect here (the test project imports most globally, and its
        // own namespace's parent, Microsoft.ML.NormalizingFlows, implicitly); the rest is line for line the test's body.
        string imports = source + File.ReadAllText(Path.Combine(Path.GetDirectoryName(testFile)!, "GlobalUsings.cs"))
            + "\nusing Microsoft.ML.NormalizingFlows;\n";
        foreach (var usingLine in docLines.Where(l => l.StartsWith("using ", StringComparison.Ordinal)))
            Assert.IsTrue(imports.Contains("\n" + usingLine + "\n") || imports.Contains("\nglobal " + usingLine + "\n"), $"'{usingLine}' is not in effect in the test");
        CollectionAssert.AreEqual(codeLines, docLines.Where(l => !l.StartsWith("using ", StringComparison.Ordinal)).ToList(),
            "docs/flows.md's example must be the code of BuilderExampleRunsAndSamplesConsistently");
    }

    private static List<string> Lines(string text) =>
        text.Replace("\r", "").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).ToList();

    private static string ThisFile([CallerFilePath] string path = "") => path;
}
