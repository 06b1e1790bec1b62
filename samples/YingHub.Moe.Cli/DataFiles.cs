namespace YingHub.Moe.Cli;

/// <summary>Finds the reference data: an explicit path, <c>$YINGHUB_DATA_DIR</c>, or <c>../shared/data</c> beside the repository.</summary>
internal static class DataFiles
{
    /// <summary>The path of <paramref name="file"/>; fails with a message naming every way to supply it.</summary>
    public static string Locate(string? explicitPath, string file)
    {
        if (explicitPath is not null)
            return File.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : throw new CliException($"Data file '{explicitPath}' does not exist.");

        return TryLocate(file)
            ?? throw new CliException($"'{file}' not found: pass its path, or set YINGHUB_DATA_DIR to a directory holding it, or put it in ../shared/data beside the repository.");
    }

    /// <summary>The full path of <paramref name="file"/> in <c>$YINGHUB_DATA_DIR</c> or a <c>shared/data</c> directory above the current or program directory; null if absent.</summary>
    public static string? TryLocate(string file)
    {
        var candidates = new List<string>();
        string? env = Environment.GetEnvironmentVariable("YINGHUB_DATA_DIR");
        if (!string.IsNullOrEmpty(env)) candidates.Add(Path.Combine(env, file));
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                candidates.Add(Path.Combine(dir.FullName, "shared", "data", file));
        }

        string? found = candidates.FirstOrDefault(File.Exists);
        return found is null ? null : Path.GetFullPath(found);
    }

    /// <summary>
    /// A <c>--data</c> value as a file path: <c>tinyshakespeare</c> is found (or downloaded) by
    /// <see cref="TinyShakespeare.Locate"/>; anything else must be an existing file.
    /// </summary>
    public static string Corpus(string data) =>
        data == "tinyshakespeare" ? TinyShakespeare.Locate() : Locate(data, Path.GetFileName(data));
}
