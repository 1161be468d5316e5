using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using TorchSharp;

/// <summary>
/// The MRP model of shared/data/mrp (its README): a non-centred multilevel logistic regression of a survey answer on
/// state, region, age, ethnicity, education, age × education, sex and the state's Republican vote share, written
/// with the model API; and its poststratification over the census table. The group effects enter η as one matrix
/// product with a one-hot design (not per-row gathers).
/// </summary>
internal static class MrpModel
{
    /// <summary>Group sizes in the design's column order: state, region, age, eth, educ, age × educ.</summary>
    public static readonly (string Name, int Levels)[] Groups = { ("state", 50), ("region", 4), ("age", 6), ("eth", 4), ("educ", 5), ("age_educ", 30) };

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

    /// <summary>The one-hot design [rows, 99] of the group effects, row-major.</summary>
    public static double[] Design(Row[] rows)
    {
        int width = Groups.Sum(g => g.Levels);
        var x = new double[rows.Length * width];
        for (int n = 0; n < rows.Length; n++)
        {
            var r = rows[n];
            int a = (int)r.Age - 1, d = (int)r.Educ - 1;
            int[] levels = { (int)r.State - 1, (int)r.Region - 1, a, (int)r.Eth - 1, d, a * 5 + d };
            int offset = 0;
            for (int g = 0; g < Groups.Length; g++)
            {
                x[n * width + offset + levels[g]] = 1;
                offset += Groups[g].Levels;
            }
        }
        return x;
    }

    public static BayesianModel Create(Row[] survey, Row[] cells)
    {
        int width = Groups.Sum(g => g.Levels);
        var model = new BayesianModel("mrp").Parameter("alpha").Parameter("b_male").Parameter("b_rep");
        foreach (var (name, _) in Groups) model.Parameter("sd_" + name, Constraint.Positive);
        foreach (var (name, levels) in Groups) model.Parameter("z_" + name, levels);
        // Poststratification: weights n_c / (state total) per state, and n_c / N for the nation: a [cells, 51] matrix.
        var weights = new double[cells.Length * 51];
        var stateTotals = new double[50];
        foreach (var c in cells) stateTotals[(int)c.State - 1] += c.Last;
        double total = stateTotals.Sum();
        for (int i = 0; i < cells.Length; i++)
        {
            weights[i * 51 + (int)cells[i].State - 1] = cells[i].Last / stateTotals[(int)cells[i].State - 1];
            weights[i * 51 + 50] = cells[i].Last / total;
        }
        return model
            .Data("x", Design(survey), survey.Length, width)
            .Data("male", survey.Select(r => r.Male - 0.5).ToArray())
            .Data("rep", survey.Select(r => r.RepVote - 0.5).ToArray())
            .Data("y", survey.Select(r => (double)r.Last).ToArray())
            .Data("cells_x", Design(cells), cells.Length, width)
            .Data("cells_male", cells.Select(r => r.Male - 0.5).ToArray())
            .Data("cells_rep", cells.Select(r => r.RepVote - 0.5).ToArray())
            .Data("cells_weights", weights, cells.Length, 51)
            .LogDensity(m =>
            {
                var logPrior = new Normal(0, 2.5).LogProb(m["alpha"]) + new Normal(0, 2.5).LogProb(m["b_male"]) + new Normal(0, 2.5).LogProb(m["b_rep"]);
                foreach (var (name, _) in Groups)
                    logPrior = logPrior + new HalfNormal(1).LogProb(m["sd_" + name]) + new Normal(0, 1).LogProb(m["z_" + name]).sum(1);
                var eta = Eta(m, m.Data("x"), m.Data("male"), m.Data("rep"));
                return logPrior + new BernoulliLogit(eta).LogProb(m.Data("y").unsqueeze(0)).sum(1);
            });
    }

    /// <summary>η for rows with design x, centred sex and vote share: [B, rows].</summary>
    public static torch.Tensor Eta(ModelContext m, torch.Tensor x, torch.Tensor male, torch.Tensor rep)
    {
        var effects = torch.cat(Groups.Select(g => m["z_" + g.Name] * m["sd_" + g.Name].unsqueeze(1)).ToArray(), 1); // [B, 99]
        return m["alpha"].unsqueeze(1) + m["b_male"].unsqueeze(1) * male.unsqueeze(0) + m["b_rep"].unsqueeze(1) * rep.unsqueeze(0)
               + effects.matmul(x.t());
    }

    /// <summary>The poststratified estimates per draw: [B, 51] (states 1–50, then the nation).</summary>
    public static torch.Tensor Poststratify(ModelContext m) =>
        torch.sigmoid(Eta(m, m.Data("cells_x"), m.Data("cells_male"), m.Data("cells_rep"))).matmul(m.Data("cells_weights"));
}
