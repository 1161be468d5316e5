using System.Reflection;
using System.Reflection.Emit;
using Microsoft.ML.NormalizingFlows.Tensors;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// TorchSharp 0.107 passes a temporary Scalar's native handle to libtorch without keeping it alive, so a garbage
/// collection on another thread can finalize it mid-call ("INTERNAL ASSERT FAILED at c10/core/Scalar.h", seen
/// killing the seed bench). The library must create no such temporaries: every scalar comes from
/// <see cref="RootedScalars"/> or a held variable, and no TorchSharp method it calls makes one internally.
/// </summary>
[TestClass]
public sealed class ScalarLifetimeTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly Dictionary<ushort, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static).Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => (ushort)o.Value);

    private static readonly Assembly TorchSharpAssembly = typeof(Scalar).Assembly;

    /// <summary>Methods called by <paramref name="method"/>'s IL (call, callvirt, newobj).</summary>
    internal static IEnumerable<MethodBase> Callees(MethodBase method)
    {
        byte[]? il;
        try { il = method.GetMethodBody()?.GetILAsByteArray(); }
        catch (Exception e) when (e is InvalidOperationException or NotSupportedException) { yield break; }
        if (il is null) yield break;
        var typeArguments = method.DeclaringType is { IsGenericType: true } t ? t.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        for (int i = 0; i < il.Length;)
        {
            ushort code = il[i] == 0xFE ? (ushort)(0xFE00 | il[i + 1]) : il[i];
            i += code > 0xFF ? 2 : 1;
            var op = OpCodesByValue[code];
            int operandSize = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, i),
                _ => 4,
            };
            if (op == OpCodes.Call || op == OpCodes.Callvirt || op == OpCodes.Newobj)
            {
                MethodBase? callee = null;
                try { callee = method.Module.ResolveMethod(BitConverter.ToInt32(il, i), typeArguments, methodArguments); }
                catch (ArgumentException) { }
                if (callee is not null) yield return callee;
            }
            i += operandSize;
        }
    }

    private static bool CreatesScalar(MethodBase m) =>
        m.DeclaringType == typeof(Scalar) && m.Name == "op_Implicit"
        || m.DeclaringType?.Name == "ScalarExtensionMethods" && m.Name.StartsWith("To") && m is MethodInfo { ReturnType.Name: "Scalar" };

    /// <summary>Does this TorchSharp method (or one it calls, a few levels down) make a temporary Scalar?</summary>
    private static bool MakesTemporaryScalar(MethodBase method, Dictionary<MethodBase, bool> memo, int depth = 0)
    {
        if (memo.TryGetValue(method, out var known)) return known;
        memo[method] = false; // cycles
        bool result = false;
        if (depth < 4)
            foreach (var callee in Callees(method))
                if (CreatesScalar(callee) || callee.DeclaringType?.Assembly == TorchSharpAssembly && MakesTemporaryScalar(callee, memo, depth + 1))
                { result = true; break; }
        return memo[method] = result;
    }

    [TestMethod]
    public void TheLibraryCreatesNoTemporaryScalars()
    {
        var library = typeof(FlowFactory).Assembly;
        var memo = new Dictionary<MethodBase, bool>();
        var offenders = new SortedSet<string>();
        const BindingFlags all = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
        foreach (var type in library.GetTypes().Where(t => t != typeof(RootedScalars)))
            foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
                foreach (var callee in Callees(method))
                {
                    if (CreatesScalar(callee))
                    {
                        // Explicit ToScalar() is allowed only where the result is held ('using var'), which this scan
                        // cannot see; implicit conversions are never held.
                        if (callee.Name == "op_Implicit") offenders.Add($"{type.FullName}.{method.Name}: implicit conversion to Scalar");
                    }
                    else if (callee.DeclaringType?.Assembly == TorchSharpAssembly && MakesTemporaryScalar(callee, memo))
                        offenders.Add($"{type.FullName}.{method.Name}: calls {callee.DeclaringType!.Name}.{callee.Name}({string.Join(", ", callee.GetParameters().Select(p => p.ParameterType.Name))}), which makes a temporary Scalar");
                }
        foreach (var o in offenders) TestContext.WriteLine(o);
        Assert.AreEqual(0, offenders.Count, $"{offenders.Count} call sites make temporary Scalars:\n{string.Join("\n", offenders)}");
    }

    /// <summary>
    /// The paths that crashed, many times, while another thread forces collections and runs finalizers: before the
    /// fix this failed within seconds ("Expected false to be true" or a corrupted-Scalar error from c10/core/Scalar.h).
    /// </summary>
    [TestMethod]
    [Timeout(120_000)]
    public void SamplingTrainingAndEvaluationSurviveForcedGarbageCollection()
    {
        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true, Name = "forced GC" };
        collector.Start();
        try
        {
            var ring = TargetGallery.Create("ring");
            var flows = new[] { "planar", "radial", "realnvp", "nsf-coupling", "iaf" }.Select(name => FlowFactory.Create(name, 2, 2, seed: 0)).ToList();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int rounds = 0;
            while (clock.Elapsed < TimeSpan.FromSeconds(12))
            {
                foreach (var q in flows)
                {
                    Evaluation.EstimateElbo(q, ring, 512, seed: rounds);
                    using var scope = torch.NewDisposeScope();
                    var (z, _) = q.Sample(64);
                    if (q.Transform!.HasInverse) q.Transform.Inverse(z);
                }
                VariationalTrainer.Fit(flows[rounds % flows.Count], ring, new TrainerOptions { Iterations = 20, BatchSize = 64, ReportEvery = 10 });
                rounds++;
            }
            TestContext.WriteLine($"{rounds} rounds under {Interlocked.Read(ref collections)} forced collections");
            Assert.IsTrue(Interlocked.Read(ref collections) > 100, "the collector thread must actually have run");
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
    }
}
