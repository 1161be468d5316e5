/// <summary>Dispatches a bench verb. Each verb lives in its own file and registers itself here.</summary>
internal static partial class BenchVerbs
{
    private static readonly Dictionary<string, (string Help, Func<string[], int> Run)> Verbs = new(StringComparer.OrdinalIgnoreCase);

    private static void Add(string name, string help, Func<string[], int> run) => Verbs[name] = (help, run);

    public static int Run(string[] args)
    {
        RegisterAll();
        if (args.Length == 0 || args[0] is "-h" or "--help" || !Verbs.TryGetValue(args[0], out var verb))
        {
            if (args.Length > 0 && args[0] is not ("-h" or "--help")) Console.Error.WriteLine($"Unknown bench verb '{args[0]}'.");
            Console.WriteLine("Usage: dotnet run -c Release --project samples/NormalizingFlows.Bench -- VERB [options]");
            foreach (var (name, (help, _)) in Verbs.OrderBy(v => v.Key)) Console.WriteLine($"  {name,-20} {help}");
            return args.Length == 0 || args[0] is "-h" or "--help" ? 0 : 2;
        }
        try { return verb.Run(args[1..]); }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            // Every verb parses its numbers with int/long/double.Parse: a bad one is a usage error, not a crash.
            Console.Error.WriteLine($"error: bench {args[0]}: an argument is not a valid number ({e.Message}). Run with --help for the arguments.");
            return 2;
        }
    }

    /// <summary>Each verb file adds one line here via a partial method.</summary>
    private static void RegisterAll()
    {
        RegisterSeed();
        RegisterSeedPort();
        RegisterReliable();
        RegisterMLNet();
        RegisterQuality();
        RegisterPosteriorDb();
        RegisterMrp();
        RegisterMrpScale();
        RegisterScan();
        RegisterSynthetic();
        RegisterPeers();
    }

    static partial void RegisterSeed();
    static partial void RegisterSeedPort();
    static partial void RegisterReliable();
    static partial void RegisterMLNet();
    static partial void RegisterQuality();
    static partial void RegisterPosteriorDb();
    static partial void RegisterMrp();
    static partial void RegisterMrpScale();
    static partial void RegisterScan();
    static partial void RegisterSynthetic();
    static partial void RegisterPeers();
}
