using System.Runtime.InteropServices;
using YingHub.Moe.Build;
using TorchSharp;

namespace YingHub.Moe.Core.Runtime;

/// <summary>
/// Initialises libtorch and, when that fails, says why in terms a user can act on. TorchSharp's own message blames a
/// missing package reference even when the real cause is an older system libstdc++ (see the README, "Linux with an
/// older libstdc++").
/// </summary>
public static class TorchRuntime
{
    private const string NativeLibrary = "libLibTorchSharp.so";

    /// <summary>
    /// Initialises the CPU backend of libtorch (idempotent, cheap after the first call).
    /// </summary>
    /// <exception cref="InvalidOperationException">libtorch cannot be loaded; the message names the cause.</exception>
    public static void EnsureInitialized()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            throw new InvalidOperationException(Diagnose(AppContext.BaseDirectory) ?? ex.Message, ex);
        }
    }

    /// <summary>
    /// The reason libtorch cannot load from <paramref name="appDirectory"/> when it is an unmet libstdc++ version
    /// requirement of TorchSharp's native library, or null when no such cause is found.
    /// </summary>
    internal static string? Diagnose(string appDirectory)
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || !Directory.Exists(appDirectory)) return null;
        string? libstdcxx = ElfVersions.FindSystemLibstdcxx();
        if (libstdcxx is null) return null;
        HashSet<string> defined = ElfVersions.ReadDefinitions(libstdcxx);
        foreach (string copy in Directory.EnumerateFiles(appDirectory, NativeLibrary, SearchOption.AllDirectories))
        {
            string[] unmet = ElfVersions.ReadNeeds(copy)
                .Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal) && !n.IsWeak && !defined.Contains(n.Version))
                .Select(n => n.Version)
                .ToArray();
            if (unmet.Length > 0)
            {
                return $"TorchSharp's native library '{copy}' requires {string.Join(", ", unmet)}, which the system " +
                       $"libstdc++ '{libstdcxx}' does not define. Rebuild the application with the YingHub.Moe.Core " +
                       "package (or project) referenced: its build step marks that requirement weak in the build " +
                       "output. Alternatively install a libstdc++ from GCC 13 or later.";
            }
        }

        return null;
    }
}
