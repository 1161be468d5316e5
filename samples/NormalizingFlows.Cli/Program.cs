// Placeholder entry point replaced by the CLI (issue 2); kept compiling so the solution builds.
Console.WriteLine("NormalizingFlows CLI");
