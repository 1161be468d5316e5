using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Regression;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static Microsoft.ML.NormalizingFlows.Tensors.RootedScalars;

/// <summary>
/// "mrp-scale": the MRP model on a survey too large to hold as one likelihood — N rows (default 1,000,000) of the
/// same structure, simulated from NUTS's posterior means, written to a CSV and read back lazily through ML.NET's
/// text loader — fitted with the default recipe while the likelihood streams minibatches straight from the
/// IDataView (scaled by N/B). Prints rows/s, the process's memory over the fit (it should stay flat) and the
/// estimates against the simulation's truth.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterMrpScale() => Add("mrp-scale", "MRP streamed from an IDataView: [--rows N] [--batch ROWS] [--threads N] [--family flow|full-rank|mean-field] [--parameterization non-centred|centred|partly-centred] [--plain] [--keep FILE] [--verbose]", MrpScale);

    private static int MrpScale(string[] args)
    {
        long rows = 1_000_000;
        int batch = 10_000, threads = 1;
        string? keep = null;
        bool verbose = false, plain = false;
        var family = ApproximationFamily.Flow;
        // shared/data/mrp's model (non-centred) by default; the others are the same model written for data this
        // informative (MrpModel.Parameterization, docs/models.md).
        var parameterization = MrpModel.Parameterization.NonCentred;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--rows": rows = long.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--batch": batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--keep": keep = args[++i]; break;
                case "--verbose": verbose = true; break;
                case "--plain": plain = true; break;
                case "--family":
                    family = args[++i] switch
                    {
                        "flow" => ApproximationFamily.Flow,
                        "full-rank" => ApproximationFamily.FullRankGaussian,
                        "mean-field" => ApproximationFamily.MeanFieldGaussian,
                        var other => throw new FormatException($"unknown family '{other}'"),
                    };
                    break;
                case "--parameterization":
                    parameterization = args[++i] switch
                    {
                        "centred" => MrpModel.Parameterization.Centred,
                        "non-centred" => MrpModel.Parameterization.NonCentred,
                        "partly-centred" => MrpModel.Parameterization.PartlyCentred,
                        var other => throw new FormatException($"unknown parameterization '{other}' (centred, partly-centred or non-centred)"),
                    };
                    break;
                default: throw new FormatException($"unknown argument '{args[i]}'");
            }
        }
        var data = MrpWorkflow.FindData();
        if (data is null) { Console.Error.WriteLine("error: shared/data/mrp was not found above this folder."); return 2; }
        var surveyPath = Path.Combine(data, "survey.csv");
        var ml = new MLContext(seed: 1);
        var survey = MrpModel.Read(ml, surveyPath);
        var truth = MrpWorkflow.ReadReference(Path.Combine(data, "reference_parameters.csv")).ToDictionary(p => p.Name, p => p.Values["mean"]);
        string csv = keep ?? Path.Combine(Path.GetTempPath(), $"mrp-scale-{Environment.ProcessId}.csv");
        try
        {
            var clock = Stopwatch.StartNew();
            var cells = Simulate(survey, truth, rows, csv);
            Console.WriteLine($"simulated {rows:N0} respondents (covariates resampled from the survey, y from NUTS's posterior means) into {new FileInfo(csv).Length / 1e6:F0} MB in {clock.Elapsed.TotalSeconds:F1} s");

            var view = ml.Data.LoadFromTextFile(csv, new TextLoader.Options
            {
                HasHeader = true,
                Separators = new[] { ',' },
                Columns = new[]
                {
                    new TextLoader.Column("State", DataKind.Int32, 0), new TextLoader.Column("Region", DataKind.Int32, 1),
                    new TextLoader.Column("Age", DataKind.Int32, 2), new TextLoader.Column("Eth", DataKind.Int32, 3),
                    new TextLoader.Column("Educ", DataKind.Int32, 4), new TextLoader.Column("Male", DataKind.Single, 5),
                    new TextLoader.Column("RepVote", DataKind.Single, 6), new TextLoader.Column("Y", DataKind.Single, 7),
                },
            });
            long evaluations = 0;
            var model = MrpModel.Declare("mrp-streamed", parameterization)
                .Minibatch(ml, view, batch, "State", "Region", "Age", "Eth", "Educ", "Male", "RepVote", "Y");
            // The minibatch's respondents as a binomial regression with one trial each (the compiled sparse pass on CPU).
            // By default its N/B-scaled sum gets a control variate: the likelihood's expansion about the penalized mode
            // of β, summed over all rows by Newton passes over the stream; --plain streams the bare N/B · Σ.
            BinomialLogitControlVariate? variate = null;
            if (!plain)
            {
                var passClock = Stopwatch.StartNew();
                variate = BinomialLogitControlVariate.AtPenalizedMode(model.Minibatches!, StreamedRegression);
                Console.WriteLine($"control variate: {variate.Passes} passes over the {rows:N0} rows in {passClock.Elapsed.TotalSeconds:F1} s ({variate.Passes * rows / passClock.Elapsed.TotalSeconds:N0} rows/s)");
            }
            model.LogDensity(m =>
            {
                Interlocked.Increment(ref evaluations);
                var b = m.Minibatch;
                var likelihood = StreamedRegression(b);
                var coefficients = MrpModel.Coefficients(m, parameterization);
                var estimate = variate is null ? likelihood.LogLikelihood(coefficients, dropConstant: true) * S(b.Scale)
                    : variate.LogLikelihood(likelihood, coefficients, b.Scale, dropConstant: true);
                return MrpModel.LogPrior(m, parameterization).Plus(estimate);
            });

            using var memory = new MemoryTrace();
            clock.Restart();
            var options = new PosteriorFitOptions { Threads = threads, Family = family };
            if (verbose) options.Progress = new Progress<(string Stage, Microsoft.ML.NormalizingFlows.Training.TrainingProgress P)>(
                r => Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {r.Stage} {r.P.Iteration}/{r.P.Iterations}: ELBO {r.P.Elbo:F1}, learning rate {r.P.LearningRate:G3}")));
            var fit = model.Fit(options);
            clock.Stop();
            memory.Stop();
            Console.WriteLine($"fit: {clock.Elapsed.TotalSeconds:F1} s (default recipe, {family}, {parameterization}, {batch:N0}-row minibatches); k̂ {fit.Report.VerdictParetoK:F2}, {fit.Report.Verdict} (k̂ rests on streamed estimates of log p̃: precise with the control variate, noisy with --plain; docs/models.md)");
            foreach (var stage in fit.Stages) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {stage.Name}: {stage.Elapsed.TotalSeconds:F1} s, {stage.Detail}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"streamed {evaluations:N0} minibatches = {evaluations * (double)batch:N0} rows: {evaluations * (double)batch / clock.Elapsed.TotalSeconds:N0} rows/s"));
            Console.WriteLine(memory.Describe());
            // The reference: the same rows as binomial cells, which fit in memory, fitted with the same family.
            var exactModel = MrpModel.Create(cells.Values.Select(c => c.Row).ToArray(), cells.Values.Select(c => c.N).ToArray(),
                cells.Values.Select(c => c.K).ToArray(), Array.Empty<MrpModel.Row>(), parameterization);
            clock.Restart();
            var exact = exactModel.Fit(new PosteriorFitOptions { Threads = threads, Family = family });
            Console.WriteLine($"reference: the same {rows:N0} rows as {cells.Count:N0} binomial cells, fitted in memory with the same recipe: {clock.Elapsed.TotalSeconds:F1} s, k̂ {exact.Report.VerdictParetoK:F2}");
            foreach (var stage in exact.Stages) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {stage.Name}: {stage.Elapsed.TotalSeconds:F1} s, {stage.Detail}"));
            var summary = fit.Summary(4_000);
            var reference = exact.Summary(4_000);
            Console.WriteLine($"   {"parameter",-14}{"streamed",10}{"sd",10}{"in memory",11}{"sd",10}{"Δ/sd",8}{"truth",10}");
            foreach (var name in new[] { "alpha", "b_male", "b_rep" }.Concat(MrpModel.Groups.Select(g => "sd_" + g.Name)))
            {
                var row = summary[name];
                var refRow = reference[name];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"   {name,-14}{row.Mean,10:F4}{row.Sd,10:F4}{refRow.Mean,11:F4}{refRow.Sd,10:F4}{(row.Mean - refRow.Mean) / refRow.Sd,8:F2}{truth[name],10:F4}"));
            }
            // Every entry (all 108), streamed against in memory: the worst mean gap in the in-memory fit's sds and the
            // worst sd ratio, then how far the in-memory fit is from the simulation's truth in its own sds.
            var pairs = summary.Rows.Select(r => (Streamed: r, Memory: reference[r.Name])).ToArray();
            var worstMean = pairs.MaxBy(p => Math.Abs(p.Streamed.Mean - p.Memory.Mean) / p.Memory.Sd);
            var worstSd = pairs.MaxBy(p => Math.Abs(Math.Log(p.Streamed.Sd / p.Memory.Sd)));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"all {pairs.Length} entries, streamed vs in memory: worst mean {(worstMean.Streamed.Mean - worstMean.Memory.Mean) / worstMean.Memory.Sd:+0.00;-0.00} sd ({worstMean.Streamed.Name}), worst sd {worstSd.Streamed.Sd / worstSd.Memory.Sd - 1:+0.0%;-0.0%} ({worstSd.Streamed.Name})"));
            var truthGaps = reference.Rows.Select(r => (r.Name, Z: (r.Mean - TruthOf(r.Name)) / r.Sd)).ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"in memory vs the simulation's truth: |mean − truth| / sd median {Median(truthGaps.Select(g => Math.Abs(g.Z)).ToArray()):F2}, worst {truthGaps.MaxBy(g => Math.Abs(g.Z)).Z:+0.00;-0.00} ({truthGaps.MaxBy(g => Math.Abs(g.Z)).Name}); " +
                $"{truthGaps.Count(g => Math.Abs(g.Z) < 1.645):N0} of {truthGaps.Length} within the central 90 % (a calibrated posterior puts about 90 % there)"));

            // Truth per entry: the summary's names are "z_state[3]" or "a_age_educ[7]" (1-based, the 30 age × education
            // cells flattened age-major); the reference file writes those as Stan's matrix [age, educ].
            double TruthOf(string entry)
            {
                int open = entry.IndexOf('[');
                if (open < 0) return truth[entry];
                string group = entry[2..open];
                int index = int.Parse(entry[(open + 1)..^1], CultureInfo.InvariantCulture);
                string level = group == "age_educ" ? $"{(index - 1) / 5 + 1},{(index - 1) % 5 + 1}" : $"{index}";
                double z = truth[$"z_{group}[{level}]"];
                return entry.StartsWith("a_", StringComparison.Ordinal) ? truth["sd_" + group] * z : z;
            }
            return 0;
        }
        finally
        {
            if (keep is null && File.Exists(csv)) File.Delete(csv);
        }
    }

    /// <summary>A minibatch's respondents as a binomial regression, one trial each, over its sparse design (levels 1-based in the file).</summary>
    private static BinomialLogitRegression StreamedRegression(MinibatchRows b) => new(
        MrpModel.SparseDesignOf(Ints(b["State"]), Ints(b["Region"]), Ints(b["Age"]), Ints(b["Eth"]), Ints(b["Educ"]), Doubles(b["Male"]), Doubles(b["RepVote"])),
        Ones(b), Doubles(b["Y"]));

    private static int[] Ints(torch.Tensor column) => column.to(torch.ScalarType.Int32, torch.CPU).data<int>().ToArray();

    private static double[] Doubles(torch.Tensor column) => column.to(torch.ScalarType.Float64, torch.CPU).data<double>().ToArray();

    private static double[] Ones(MinibatchRows b) => Enumerable.Repeat(1.0, (int)b["Y"].shape[0]).ToArray();

    /// <summary>
    /// Writes N respondents: covariates of a random survey row, y ~ Bernoulli(logit⁻¹ η) at the given parameters.
    /// Returns the same rows grouped into cells (at most 12,000), the exact likelihood the streamed fit is compared with.
    /// </summary>
    private static Dictionary<(float State, float Age, float Eth, float Educ, float Male), (MrpModel.Row Row, double N, double K)> Simulate(
        MrpModel.Row[] survey, Dictionary<string, double> truth, long rows, string path)
    {
        var cells = new Dictionary<(float, float, float, float, float), (MrpModel.Row Row, double N, double K)>();
        var random = new Random(20231);
        using var writer = new StreamWriter(path);
        writer.WriteLine("state,region,age,eth,educ,male,repvote,y");
        // Names as in reference_parameters.csv; the age × education effects are Stan's matrix z_age_educ[age,educ].
        double Effect(string group, string level) => truth["sd_" + group] * truth[$"z_{group}[{level}]"];
        for (long n = 0; n < rows; n++)
        {
            var r = survey[random.Next(survey.Length)];
            int s = (int)r.State, g = (int)r.Region, a = (int)r.Age, e = (int)r.Eth, d = (int)r.Educ;
            double eta = truth["alpha"] + truth["b_male"] * (r.Male - 0.5) + truth["b_rep"] * (r.RepVote - 0.5)
                         + Effect("state", $"{s}") + Effect("region", $"{g}") + Effect("age", $"{a}") + Effect("eth", $"{e}") + Effect("educ", $"{d}") + Effect("age_educ", $"{a},{d}");
            int y = random.NextDouble() < 1 / (1 + Math.Exp(-eta)) ? 1 : 0;
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{s},{g},{a},{e},{d},{r.Male},{r.RepVote},{y}"));
            var key = (r.State, r.Age, r.Eth, r.Educ, r.Male);
            var cell = cells.TryGetValue(key, out var c) ? c : (r, 0, 0);
            cells[key] = (cell.Row, cell.N + 1, cell.K + y);
        }
        return cells;
    }

    /// <summary>Samples the process's working set every half second while a fit runs.</summary>
    private sealed class MemoryTrace : IDisposable
    {
        private readonly List<(double Seconds, long Bytes)> samples = new();
        private readonly Stopwatch clock = Stopwatch.StartNew();
        private readonly Timer timer;

        public MemoryTrace() => timer = new Timer(_ => { lock (samples) samples.Add((clock.Elapsed.TotalSeconds, Environment.WorkingSet)); }, null, 0, 500);

        public void Stop() => timer.Change(Timeout.Infinite, Timeout.Infinite);

        public string Describe()
        {
            lock (samples)
            {
                if (samples.Count == 0) return "memory: no samples";
                var deciles = Enumerable.Range(1, 10).Select(k => samples[Math.Min(samples.Count - 1, k * samples.Count / 10)]);
                return "working set over the fit (MB at each tenth of its time): " +
                       string.Join(", ", deciles.Select(s => $"{s.Bytes / 1e6:F0}")) + $"; peak {samples.Max(s => s.Bytes) / 1e6:F0} MB";
            }
        }

        public void Dispose() => timer.Dispose();
    }
}
