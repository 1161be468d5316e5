/// <summary>
/// Finds the project's shared anchors and reference data (shared/…), which live beside the repository, not in it.
/// Linked into the samples that read them (the bench, the MRP sample).
/// </summary>
internal static class SharedFiles
{
    /// <summary>The first existing file at <paramref name="relative"/> found walking up from the current folder, then from the program's own folder.</summary>
    public static string? FindUpward(string relative)
    {
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, relative);
                if (File.Exists(candidate)) return candidate;
            }
        return null;
    }
}
