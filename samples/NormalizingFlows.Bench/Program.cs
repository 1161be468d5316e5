// Benchmarks, run by hand. Each verb prints its figures; see README "Benchmarks".
return BenchVerbs.Run(args);
