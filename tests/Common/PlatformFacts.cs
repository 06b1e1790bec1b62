using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace YingHub.Moe.Testing;

/// <summary>
/// Facts and theories that need something of the machine. xunit 2 has no dynamic skip, so each attribute sets
/// <c>Skip</c> with the reason when the requirement is missing: the test is reported as skipped, not as passed
/// without running (which an early <c>return</c> does).
/// </summary>
internal static class Platform
{
    /// <summary>Whether the managed SIMD kernels can run: 256-bit vectors are hardware-accelerated (AVX2 on x64; AVX-512 implies it).</summary>
    public static bool SimdKernels { get; } = Vector256.IsHardwareAccelerated;

    /// <summary>The skip reason of a kernel test on a machine without them.</summary>
    public const string NoSimdKernels =
        "needs hardware-accelerated 256-bit vectors (AVX2): without them the managed kernels never run (RowProduct.Supported is false).";

    /// <summary>The skip reason of a Linux-only test elsewhere.</summary>
    public const string NotLinux = "Linux only: it reads the ELF version requirements of libLibTorchSharp.so.";

    /// <summary>Whether this is Linux.</summary>
    public static bool IsLinux => RuntimeInformation.IsOSPlatform(OSPlatform.Linux);
}

/// <summary>A fact skipped, with the reason, on a machine without the SIMD kernels (<see cref="Platform.SimdKernels"/>).</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class SimdKernelFactAttribute : FactAttribute
{
    public SimdKernelFactAttribute()
    {
        if (!Platform.SimdKernels) Skip = Platform.NoSimdKernels;
    }
}

/// <summary>A theory skipped, with the reason, on a machine without the SIMD kernels (<see cref="Platform.SimdKernels"/>).</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class SimdKernelTheoryAttribute : TheoryAttribute
{
    public SimdKernelTheoryAttribute()
    {
        if (!Platform.SimdKernels) Skip = Platform.NoSimdKernels;
    }
}

/// <summary>A fact skipped, with the reason, off Linux.</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!Platform.IsLinux) Skip = Platform.NotLinux;
    }
}
