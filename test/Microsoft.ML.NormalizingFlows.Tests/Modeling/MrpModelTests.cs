using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Modeling;

/// <summary>
/// The MRP sample's model (samples/NormalizingFlows.Mrp/MrpModel.cs) groups respondents with equal covariates into
/// binomial cells and builds η as one design product: checked here against the per-respondent Bernoulli likelihood
/// with explicit per-row sums, on a small synthetic survey (tests do not read shared/).
/// </summary>
[TestClass]
public sealed class MrpModelTests
{
    private static MrpModel.Row[] Survey(int rows, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows).Select(_ =>
        {
            int state = random.Next(1, 6); // few states, so cells repeat
            return new MrpModel.Row
            {
                State = state, Region = 1 + state % 4, Age = random.Next(1, 3), Eth = random.Next(1, 3), Educ = random.Next(1, 3),
                Male = random.Next(2), RepVote = 0.3f + 0.1f * state, Last = random.Next(2),
            };
        }).ToArray();
    }

    [TestMethod]
    public void TheAggregatedModelEqualsThePerRespondentLikelihood()
    {
        var survey = Survey(300, 5);
        var (cells, trials, successes) = MrpModel.Aggregate(survey);
        Assert.IsTrue(cells.Length < survey.Length / 2, $"{cells.Length} cells for {survey.Length} rows: the test needs repeated cells");
        Assert.AreEqual(survey.Length, trials.Sum());
        var aggregated = MrpModel.Create(survey, survey).AsTarget();
        var perRow = PerRespondent(survey).AsTarget();
        var z = torch.randn(4, aggregated.Dimension, dtype: ScalarType.Float64, generator: new torch.Generator(3)) * 0.7;
        using var noGrad = torch.no_grad();
        var a = aggregated.Evaluate(z).data<double>().ToArray();
        var b = perRow.Evaluate(z).data<double>().ToArray();
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(b[i], a[i], 1e-8, $"point {i}");
    }

    [TestMethod]
    [DataRow("Centred")]
    [DataRow("PartlyCentred")]
    public void EveryParameterizationIsTheSameModel(string parameterizationName)
    {
        var parameterization = Enum.Parse<MrpModel.Parameterization>(parameterizationName); // the sample's type is internal
        // At a = σ z the centred density is the non-centred one divided by the map's Jacobian σ per level, so
        // log p̃(u_centred) = log p̃(u_non-centred) − Σ over centred groups of (levels · log σ_g). The unconstrained
        // layouts agree: α, β_male, β_rep, the six log σ, then each group's effects.
        var (cells, trials, successes) = MrpModel.Aggregate(Survey(300, 5));
        var nonCentred = MrpModel.Create(cells, trials, successes, Array.Empty<MrpModel.Row>()).AsTarget();
        var other = MrpModel.Create(cells, trials, successes, Array.Empty<MrpModel.Row>(), parameterization).AsTarget();
        var u = torch.randn(4, nonCentred.Dimension, dtype: ScalarType.Float64, generator: new torch.Generator(8)) * 0.5;
        var mapped = u.clone();
        var expected = torch.zeros(4, dtype: ScalarType.Float64);
        long offset = 3 + MrpModel.Groups.Length;
        var centredGroups = parameterization == MrpModel.Parameterization.Centred
            ? MrpModel.Groups.Select(g => g.Name).ToHashSet()
            : new HashSet<string> { "state", "eth", "age_educ" };
        for (int g = 0; g < MrpModel.Groups.Length; g++)
        {
            var (name, levels) = MrpModel.Groups[g];
            var logSigma = u[.., 3 + g];
            if (centredGroups.Contains(name))
            {
                mapped[.., TensorIndex.Slice(offset, offset + levels)] = u[.., TensorIndex.Slice(offset, offset + levels)] * logSigma.exp().unsqueeze(1);
                expected -= levels * logSigma;
            }
            offset += levels;
        }
        Assert.AreEqual(offset, nonCentred.Dimension);
        using var noGrad = torch.no_grad();
        var gap = (other.Evaluate(mapped) - (nonCentred.Evaluate(u) + expected)).abs().max().item<double>();
        Assert.IsTrue(gap < 1e-8, $"{parameterization}: largest difference {gap:E2}");
    }

    [TestMethod]
    public void PoststratificationWeighsEachStatesCellsByPopulation()
    {
        // Two cells in state 1 (populations 1 and 3), one in state 2 (population 4).
        var cells = new[]
        {
            new MrpModel.Row { State = 1, Region = 1, Age = 1, Eth = 1, Educ = 1, Male = 0.5f, RepVote = 0.5f, Last = 1 },
            new MrpModel.Row { State = 1, Region = 1, Age = 1, Eth = 1, Educ = 1, Male = 1.5f, RepVote = 0.5f, Last = 3 },
            new MrpModel.Row { State = 2, Region = 2, Age = 1, Eth = 1, Educ = 1, Male = 0.5f, RepVote = 0.5f, Last = 4 },
        };
        var model = MrpModel.Create(Survey(50, 1), cells);
        var target = model.AsTarget();
        // A q that is a point mass in effect (sd 1e-12) at z: β_male = 2, everything else 0 (every σ = 1, effects 0), so
        // η = 2 (male − ½): cell 1 has η = 0, cell 2 η = 2, cell 3 η = 0.
        var q = new Microsoft.ML.NormalizingFlows.Distributions.FlowDistribution(new Microsoft.ML.NormalizingFlows.Distributions.DiagonalNormal(target.Dimension, 1e-12));
        q.to(ScalarType.Float64);
        using (torch.no_grad()) q.named_parameters().First(p => p.name.EndsWith("loc", StringComparison.Ordinal)).parameter.index_fill_(0, torch.tensor(new long[] { 1 }), 2.0);
        var estimate = PosteriorDraws.Draw(model, q, 100).Generate(MrpModel.Poststratify)[0];
        double p2 = 1 / (1 + Math.Exp(-2));
        Assert.AreEqual((1 * 0.5 + 3 * p2) / 4, estimate[0], 1e-9, "state 1");
        Assert.AreEqual(0.5, estimate[1], 1e-9, "state 2");
        Assert.AreEqual((0.5 + 3 * p2 + 4 * 0.5) / 8, estimate[50], 1e-9, "nation");
    }

    /// <summary>The model as the README writes it: one Bernoulli per respondent, η summed term by term per row.</summary>
    private static BayesianModel PerRespondent(MrpModel.Row[] survey)
    {
        long[] Index(Func<MrpModel.Row, float> level, int minus = 1) => survey.Select(r => (long)level(r) - minus).ToArray();
        return MrpModel.Declare("per-row")
            .Data("state", Index(r => r.State)).Data("region", Index(r => r.Region)).Data("age", Index(r => r.Age))
            .Data("eth", Index(r => r.Eth)).Data("educ", Index(r => r.Educ))
            .Data("age_educ", survey.Select(r => (long)((r.Age - 1) * 5 + r.Educ - 1)).ToArray())
            .Data("male", survey.Select(r => r.Male - 0.5).ToArray()).Data("rep", survey.Select(r => r.RepVote - 0.5).ToArray())
            .Data("y", survey.Select(r => (double)r.Last).ToArray())
            .LogDensity(m =>
            {
                var eta = m["alpha"].unsqueeze(1) + m["b_male"].unsqueeze(1) * m.Data("male") + m["b_rep"].unsqueeze(1) * m.Data("rep");
                foreach (var (name, _) in MrpModel.Groups)
                    eta = eta + (m["z_" + name] * m["sd_" + name].unsqueeze(1)).index_select(1, m.Data(name));
                return MrpModel.LogPrior(m) + new BernoulliLogit(eta).LogProb(m.Data("y")).sum(1);
            });
    }
}
