namespace YingHub.Moe.Core.Checkpoints;

/// <summary>
/// Writes a directory all at once: the files go into a staging directory beside the target, which then replaces the
/// target (the previous one is moved aside and deleted only after the swap), so a crash never leaves a half-written
/// directory and a failed write puts the previous one back.
/// </summary>
internal static class AtomicDirectory
{
    /// <summary>Creates or replaces <paramref name="directory"/> with what <paramref name="write"/> puts into the staging directory it receives.</summary>
    /// <exception cref="ArgumentException">The path has no parent directory.</exception>
    public static void Replace(string directory, Action<string> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(write);
        string target = Path.GetFullPath(directory);
        string parent = Path.GetDirectoryName(target) ?? throw new ArgumentException($"'{directory}' has no parent directory.", nameof(directory));
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.tmp");
        string? old = null;
        try
        {
            Directory.CreateDirectory(staging);
            write(staging);
            if (Directory.Exists(target))
            {
                old = Path.Combine(parent, $".{Path.GetFileName(target)}.{Guid.NewGuid():N}.old");
                Directory.Move(target, old);
            }

            Directory.Move(staging, target);
        }
        catch
        {
            if (old is not null && !Directory.Exists(target)) Directory.Move(old, target); // put the previous directory back
            old = null;
            throw;
        }
        finally
        {
            if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            if (old is not null) Directory.Delete(old, recursive: true);
        }
    }
}
