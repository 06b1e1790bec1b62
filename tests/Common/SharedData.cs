namespace YingHub.Moe.Testing;

/// <summary>
/// Finds the reference data of <c>../shared/data/</c> (beside the repository root), or <c>$YINGHUB_DATA_DIR</c>.
/// Tests that need a file use <see cref="SharedDataFactAttribute"/>, which skips them with a clear message when the
/// file is absent.
/// </summary>
internal static class SharedData
{
    /// <summary>The data directory, or null when neither <c>$YINGHUB_DATA_DIR</c> nor <c>../shared/data</c> exists.</summary>
    public static string? Directory { get; } = Locate();

    /// <summary>The full path of <paramref name="file"/> in the data directory, or null when it is absent.</summary>
    public static string? Find(string file)
    {
        if (Directory is null) return null;
        string path = Path.Combine(Directory, file);
        return File.Exists(path) || System.IO.Directory.Exists(path) ? path : null;
    }

    /// <summary>The full path of <paramref name="file"/>; throws when it is absent (use with <see cref="SharedDataFactAttribute"/>).</summary>
    public static string Require(string file) =>
        Find(file) ?? throw new FileNotFoundException($"Reference data '{file}' not found; {Hint}", file);

    /// <summary>How to supply the data.</summary>
    public const string Hint = "put the shared data in ../shared/data beside the repository, or set YINGHUB_DATA_DIR.";

    private static string? Locate()
    {
        string? env = Environment.GetEnvironmentVariable("YINGHUB_DATA_DIR");
        if (!string.IsNullOrEmpty(env)) return System.IO.Directory.Exists(env) ? Path.GetFullPath(env) : null;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "YingHub.Moe.sln")))
            {
                string data = Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "data"));
                return System.IO.Directory.Exists(data) ? data : null;
            }
        }

        return null;
    }
}

/// <summary>A fact that is skipped, with a message saying how to supply it, when a shared data file is absent.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class SharedDataFactAttribute : FactAttribute
{
    public SharedDataFactAttribute(params string[] files)
    {
        string[] missing = files.Where(f => SharedData.Find(f) is null).ToArray();
        if (missing.Length > 0) Skip = $"Reference data {string.Join(", ", missing)} not found: {SharedData.Hint}";
    }
}
