namespace YingHub.Moe.Cli;

/// <summary>Finds the reference data: an explicit path, <c>$YINGHUB_DATA_DIR</c>, or <c>../shared/data</c> beside the repository.</summary>
internal static class DataFiles
{
    /// <summary>The path of <paramref name="file"/>; fails with a message naming every way to supply it.</summary>
    public static string Locate(string? explicitPath, string file)
    {
        if (explicitPath is not null)
            return File.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : throw new CliException($"Data file '{explicitPath}' does not exist.");

        var candidates = new List<string>();
        string? env = Environment.GetEnvironmentVariable("YINGHUB_DATA_DIR");
        if (!string.IsNullOrEmpty(env)) candidates.Add(Path.Combine(env, file));
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                candidates.Add(Path.Combine(dir.FullName, "shared", "data", file));
        }

        string? found = candidates.FirstOrDefault(File.Exists);
        return found is not null
            ? Path.GetFullPath(found)
            : throw new CliException($"'{file}' not found: pass its path, or set YINGHUB_DATA_DIR to a directory holding it, or put it in ../shared/data beside the repository.");
    }
}
