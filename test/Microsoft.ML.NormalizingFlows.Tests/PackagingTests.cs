using System.Diagnostics;
using System.IO.Compression;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// `dotnet pack` of the solution makes every package, with its metadata, and they install into a new console app
/// outside this repository (no Directory.Build files, only the packages): it restores, builds — the package's
/// buildTransitive native fix included — fits a flow, uses ML.NET and writes a picture.
/// </summary>
[TestClass]
public sealed class PackagingTests
{
    public TestContext TestContext { get; set; } = null!;

#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.NormalizingFlows.sln"))) return dir.FullName;
        throw new InvalidOperationException("The repository root (Microsoft.ML.NormalizingFlows.sln) was not found above the test's folder.");
    }

    private (int ExitCode, string Output) Run(string workingDirectory, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(600_000), $"dotnet {string.Join(' ', args)} did not finish");
        var text = output + error.Result;
        TestContext.WriteLine($"$ dotnet {string.Join(' ', args)} → {process.ExitCode}");
        return (process.ExitCode, text);
    }

    [TestMethod]
    [Timeout(900_000)]
    public void PackagesInstallIntoAFreshApp()
    {
        string root = RepositoryRoot();
        string work = Path.Combine(Path.GetTempPath(), "nf-pack-" + Guid.NewGuid().ToString("N"));
        string feed = Path.Combine(work, "packages"), app = Path.Combine(work, "app");
        // A version of its own, so that the global package cache can never hand back an older build.
        string version = "0.1.0-smoke" + DateTime.UtcNow.ToString("yyyyMMddHHmmss");
        Directory.CreateDirectory(app);
        try
        {
            var (packed, packOutput) = Run(root, "pack", "Microsoft.ML.NormalizingFlows.sln", "-c", Configuration, "-o", feed, $"-p:PackageVersion={version}");
            Assert.AreEqual(0, packed, packOutput);
            var packages = Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName).Order().ToArray();
            CollectionAssert.AreEqual(new[] { $"Microsoft.ML.NormalizingFlows.{version}.nupkg", $"Microsoft.ML.NormalizingFlows.Plotting.{version}.nupkg" }, packages);
            foreach (var package in packages)
            {
                using var zip = ZipFile.OpenRead(Path.Combine(feed, package!));
                var nuspec = new StreamReader(zip.Entries.Single(e => e.FullName.EndsWith(".nuspec")).Open()).ReadToEnd();
                foreach (var field in new[] { "<authors>", "<license type=\"expression\">MIT</license>", "<readme>README.md</readme>", "<description>", "<tags>" })
                    StringAssert.Contains(nuspec, field, $"{package}: {field}");
                Assert.IsNotNull(zip.GetEntry("README.md"), $"{package} carries its readme");
            }

            File.WriteAllText(Path.Combine(app, "NuGet.config"), $"""
                <?xml version="1.0" encoding="utf-8"?>
                <configuration>
                  <packageSources>
                    <add key="packed-here" value="{feed}" />
                  </packageSources>
                </configuration>
                """);
            File.WriteAllText(Path.Combine(app, "SmokeApp.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <Nullable>enable</Nullable>
                    <NoWarn>NU1603</NoWarn>
                  </PropertyGroup>
                  <ItemGroup>
                    <PackageReference Include="Microsoft.ML.NormalizingFlows" Version="{version}" />
                    <PackageReference Include="Microsoft.ML.NormalizingFlows.Plotting" Version="{version}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using Microsoft.ML;
                using Microsoft.ML.Data;
                using Microsoft.ML.NormalizingFlows;
                using Microsoft.ML.NormalizingFlows.Plotting;
                using Microsoft.ML.NormalizingFlows.Targets;
                using Microsoft.ML.NormalizingFlows.Training;

                var ring = TargetGallery.Create("ring");
                var q = FlowFactory.Create("planar", 2, 8, seed: 0);
                var fit = VariationalTrainer.Fit(q, ring, new TrainerOptions { Iterations = 300, LearningRate = 5e-3, Threads = 1 });
                Console.WriteLine(Evaluation.EstimateElbo(q, ring, 2_000));
                var written = FitPictures.WriteAll(Path.Combine(AppContext.BaseDirectory, "pictures"), q, ring, fit, "smoke");
                var ml = new MLContext(seed: 1);
                var model = ml.Transforms.NormalizingFlow(ring, new() { Layers = 4, Iterations = 50, ReportSamples = 0 }).Fit(ml.Data.CreateEmptyRows(0));
                int rows = model.Generate(5).GetColumn<float[]>("Sample").Count();
                Console.WriteLine($"PACKAGE-SMOKE OK {written.Count} pictures, {rows} rows");
                """);
            var (ran, runOutput) = Run(app, "run", "-c", "Release");
            TestContext.WriteLine(runOutput);
            Assert.AreEqual(0, ran, runOutput);
            StringAssert.Contains(runOutput, "PACKAGE-SMOKE OK 3 pictures, 5 rows");
        }
        finally
        {
            Directory.Delete(work, recursive: true);
            var cache = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
            foreach (var id in new[] { "microsoft.ml.normalizingflows", "microsoft.ml.normalizingflows.plotting" })
            {
                var cached = Path.Combine(cache, id, version);
                if (Directory.Exists(cached)) Directory.Delete(cached, recursive: true);
            }
        }
    }

    [TestMethod]
    [Timeout(600_000)]
    public void AProjectReferenceFromOutsideTheRepositoryIsToldWhatToDoAboutTheNativeLibrary()
    {
        // Reproduction: such a project does not import the repository's build targets, so libLibTorchSharp.so keeps its
        // GLIBCXX_3.4.32 need; TorchSharp then blamed a missing libtorch-cpu-linux-x64 reference.
        string root = RepositoryRoot();
        string app = Path.Combine(Path.GetTempPath(), "nf-projref-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(app);
        try
        {
            File.WriteAllText(Path.Combine(app, "RefApp.csproj"), $"""
                <Project Sdk="Microsoft.NET.Sdk">
                  <PropertyGroup>
                    <OutputType>Exe</OutputType>
                    <TargetFramework>net10.0</TargetFramework>
                    <ImplicitUsings>enable</ImplicitUsings>
                    <NoWarn>NU1603</NoWarn>
                  </PropertyGroup>
                  <ItemGroup>
                    <ProjectReference Include="{Path.Combine(root, "src", "Microsoft.ML.NormalizingFlows", "Microsoft.ML.NormalizingFlows.csproj")}" />
                  </ItemGroup>
                </Project>
                """);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                var q = Microsoft.ML.NormalizingFlows.FlowFactory.Create("planar", 2, 2);
                Console.WriteLine($"LOADED {q.Dimension}");
                """);
            var (code, output) = Run(app, "run", "-c", Configuration);
            TestContext.WriteLine(output);
            if (Platform.NativeRuntime.SystemLibraryHas(Platform.NativeRuntime.RequiredGlibcxxVersion))
            {
                Assert.AreEqual(0, code, output);
                StringAssert.Contains(output, "LOADED 2");
            }
            else
            {
                Assert.AreNotEqual(0, code, output);
                StringAssert.Contains(output, "needs GLIBCXX_3.4.32");
                StringAssert.Contains(output, "TorchSharpNativeFix.targets");
            }
        }
        finally { Directory.Delete(app, recursive: true); }
    }
}
