using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.ML.NormalizingFlows.Regression;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;

/// <summary>
/// The MRP model of shared/data/mrp (its README): a non-centred multilevel logistic regression of a survey answer on
/// state, region, age, ethnicity, education, age × education, sex and the state's Republican vote share, written
/// with the model API; and its poststratification over the census table.
/// Two choices make the log density cheap, as a Stan user would write it: respondents who share every covariate
/// (state, age, eth, educ, sex: 3,016 cells for 6,000 people) are one binomial count, whose kernel k η − n log(1 + e^η)
/// is exactly the sum of the cell's Bernoulli log-probabilities; and the likelihood is a binomial logistic regression
/// (<see cref="BinomialLogitRegression"/>, Stan's binomial_logit_glm) of the coefficients [B, 102] (α, β_male, β_rep
/// and the 99 scaled group effects) on a sparse design (an intercept, sex, vote share and six one-hots per cell).
/// </summary>
internal static class MrpModel
{
    /// <summary>Group sizes in the design's column order: state, region, age, eth, educ, age × educ.</summary>
    public static readonly (string Name, int Levels)[] Groups = { ("state", 50), ("region", 4), ("age", 6), ("eth", 4), ("educ", 5), ("age_educ", 30) };

    /// <summary>Columns of the design: intercept, sex, vote share, then the 99 one-hots.</summary>
    public static readonly int DesignWidth = 3 + Groups.Sum(g => g.Levels);

    public sealed class Row
    {
        [LoadColumn(0)] public float State { get; set; }
        [LoadColumn(1)] public float Region { get; set; }
        [LoadColumn(2)] public float Age { get; set; }
        [LoadColumn(3)] public float Eth { get; set; }
        [LoadColumn(4)] public float Educ { get; set; }
        [LoadColumn(5)] public float Male { get; set; }
        [LoadColumn(6)] public float RepVote { get; set; }
        [LoadColumn(7)] public float Last { get; set; } // y in the survey, n in the poststratification table
    }

    /// <summary>Reads survey.csv or poststrat.csv with ML.NET's text loader.</summary>
    public static Row[] Read(MLContext ml, string path) =>
        ml.Data.CreateEnumerable<Row>(ml.Data.LoadFromTextFile<Row>(path, separatorChar: ',', hasHeader: true), reuseRowObject: false).ToArray();

    /// <summary>The design as sparse rows (9 nonzeros of 102 per row): intercept, centred sex and vote share, then the six groups.</summary>
    public static SparseDesign SparseDesignOf(IReadOnlyList<Row> rows) => SparseDesignOf(
        rows.Select(r => (int)r.State).ToArray(), rows.Select(r => (int)r.Region).ToArray(), rows.Select(r => (int)r.Age).ToArray(),
        rows.Select(r => (int)r.Eth).ToArray(), rows.Select(r => (int)r.Educ).ToArray(),
        rows.Select(r => (double)r.Male).ToArray(), rows.Select(r => (double)r.RepVote).ToArray());

    /// <summary>The same from columns of 1-based levels (as the files write them), sex as 0/1 and the vote share.</summary>
    public static SparseDesign SparseDesignOf(int[] state, int[] region, int[] age, int[] eth, int[] educ, double[] male, double[] repVote)
    {
        int[] ZeroBased(int[] levels) => levels.Select(l => l - 1).ToArray();
        var ageEduc = age.Zip(educ, (a, d) => (a - 1) * 5 + d - 1).ToArray();
        return SparseDesign.Multilevel(
            new[] { Enumerable.Repeat(1.0, state.Length).ToArray(), male.Select(m => m - 0.5).ToArray(), repVote.Select(v => v - 0.5).ToArray() },
            new[] { (ZeroBased(state), 50), (ZeroBased(region), 4), (ZeroBased(age), 6), (ZeroBased(eth), 4), (ZeroBased(educ), 5), (ageEduc, 30) });
    }

    /// <summary>Respondents grouped by their covariates: one row per cell with its respondents (n) and yes answers (k).</summary>
    public static (Row[] Cells, double[] Trials, double[] Successes) Aggregate(IEnumerable<Row> survey)
    {
        var groups = survey.GroupBy(r => (r.State, r.Age, r.Eth, r.Educ, r.Male)).ToArray();
        return (groups.Select(g => g.First()).ToArray(), groups.Select(g => (double)g.Count()).ToArray(), groups.Select(g => (double)g.Sum(r => r.Last)).ToArray());
    }

    /// <summary>
    /// How the group effects are written. All are the same statistical model; they differ in the geometry the fit
    /// sees. <see cref="NonCentred"/> (shared/data/mrp's model, as Stan's MRP case study writes it): z_g ~ Normal(0, 1)
    /// and the effect is σ_g · z_g, which suits groups the data say little about. <see cref="Centred"/>: the effect
    /// a_g ~ Normal(0, σ_g) itself, which suits effects the data pin down: at a million respondents the non-centred
    /// posterior of such a group is a thin curved ridge (σ_g · z_g fixed by the data, σ_g and z_g apart only by their
    /// priors). But a group whose effects another group can absorb (region's, inside the states; age's and education's,
    /// inside age × education) is not pinned however large the survey, and centred it is a funnel whose density grows
    /// without bound as σ_g → 0 with its effects. <see cref="PartlyCentred"/> writes each group the way that suits it at
    /// scale: state, ethnicity and age × education centred; region, age and education non-centred.
    /// </summary>
    public enum Parameterization { NonCentred, Centred, PartlyCentred }

    /// <summary>Groups that another group's levels can absorb (region within state; age and education within age × education).</summary>
    private static readonly HashSet<string> AbsorbableGroups = new() { "region", "age", "educ" };

    private static bool IsCentred(string group, Parameterization p) =>
        p == Parameterization.Centred || p == Parameterization.PartlyCentred && !AbsorbableGroups.Contains(group);

    private static string EffectName(string group, Parameterization p) => (IsCentred(group, p) ? "a_" : "z_") + group;

    /// <summary>The model's parameters and priors, shared by the full-data and the streamed variants.</summary>
    public static BayesianModel Declare(string name, Parameterization parameterization = Parameterization.NonCentred)
    {
        var model = new BayesianModel(name).Parameter("alpha").Parameter("b_male").Parameter("b_rep");
        foreach (var (group, _) in Groups) model.Parameter("sd_" + group, Constraint.Positive);
        foreach (var (group, levels) in Groups) model.Parameter(EffectName(group, parameterization), levels);
        return model;
    }

    public static torch.Tensor LogPrior(ModelContext m, Parameterization parameterization = Parameterization.NonCentred)
    {
        // Sums with Plus, not +: a + b hands libtorch a temporary Scalar that another thread's garbage collection (a
        // streamed model's minibatch reader allocates) can finalize mid-call (README, "Scalars and the garbage collector").
        var logPrior = new Normal(0, 2.5).LogProb(m["alpha"]).Plus(new Normal(0, 2.5).LogProb(m["b_male"])).Plus(new Normal(0, 2.5).LogProb(m["b_rep"]));
        foreach (var (name, _) in Groups)
        {
            var scale = m["sd_" + name];
            var effects = m[EffectName(name, parameterization)];
            var effectPrior = IsCentred(name, parameterization)
                ? new Normal(torch.zeros_like(scale).unsqueeze(1), scale.unsqueeze(1)).LogProb(effects)
                : new Normal(0, 1).LogProb(effects);
            logPrior = logPrior.Plus(new HalfNormal(1).LogProb(scale)).Plus(effectPrior.sum(1));
        }
        return logPrior;
    }

    /// <summary>The coefficients of the design per draw: [B, 102].</summary>
    public static torch.Tensor Coefficients(ModelContext m, Parameterization parameterization = Parameterization.NonCentred) => torch.cat(
        new[] { m["alpha"].unsqueeze(1), m["b_male"].unsqueeze(1), m["b_rep"].unsqueeze(1) }
            .Concat(Groups.Select(g => IsCentred(g.Name, parameterization)
                ? m[EffectName(g.Name, parameterization)]
                : m[EffectName(g.Name, parameterization)] * m["sd_" + g.Name].unsqueeze(1))).ToArray(), 1);

    public static BayesianModel Create(Row[] survey, Row[] poststratification)
    {
        var (cells, trials, successes) = Aggregate(survey);
        return Create(cells, trials, successes, poststratification);
    }

    /// <summary>The model from respondents already grouped into cells (n respondents, k yes answers per cell).</summary>
    public static BayesianModel Create(Row[] cells, double[] trials, double[] successes, Row[] poststratification,
        Parameterization parameterization = Parameterization.NonCentred)
    {
        var model = Declare("mrp", parameterization);
        // The likelihood: Stan's binomial_logit_glm over the cells' sparse design (a compiled pass on CPU).
        var likelihood = new BinomialLogitRegression(SparseDesignOf(cells), trials, successes);
        if (poststratification.Length > 0)
        {
            // Poststratification: weights n_c / (state total) per state, and n_c / N for the nation: a [cells, 51] matrix.
            var weights = new double[poststratification.Length * 51];
            var stateTotals = new double[50];
            foreach (var c in poststratification) stateTotals[(int)c.State - 1] += c.Last;
            double total = stateTotals.Sum();
            for (int i = 0; i < poststratification.Length; i++)
            {
                weights[i * 51 + (int)poststratification[i].State - 1] = poststratification[i].Last / stateTotals[(int)poststratification[i].State - 1];
                weights[i * 51 + 50] = poststratification[i].Last / total;
            }
            model.Data("cells_x", SparseDesignOf(poststratification).ToDense(), poststratification.Length, DesignWidth)
                 .Data("cells_weights", weights, poststratification.Length, 51);
        }
        // Without Σ log C(n, k), a constant of the data: the sum of the respondents' Bernoulli log-probabilities.
        return model.LogDensity(m => LogPrior(m, parameterization).Plus(likelihood.LogLikelihood(Coefficients(m, parameterization), dropConstant: true)));
    }

    /// <summary>The poststratified estimates per draw: [B, 51] (states 1–50, then the nation).</summary>
    public static torch.Tensor Poststratify(ModelContext m) =>
        torch.sigmoid(Coefficients(m).matmul(m.Data("cells_x").t())).matmul(m.Data("cells_weights"));
}
