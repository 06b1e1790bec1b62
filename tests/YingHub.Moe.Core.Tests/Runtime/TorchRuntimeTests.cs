using TorchSharp;
using YingHub.Moe.Build;
using YingHub.Moe.Core.Runtime;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Core.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void Torch_initialises_and_a_matmul_matches_a_naive_loop()
    {
        // Fails loudly (with TorchRuntime's diagnosis) if the libstdc++ compat step did not run.
        TorchRuntime.EnsureInitialized();

        const int n = 5, k = 7, m = 3;
        var rng = new Random(1234);
        float[] a = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        float[] b = Enumerable.Range(0, k * m).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

        using var scope = torch.NewDisposeScope();
        float[] actual = torch.matmul(torch.tensor(a, n, k), torch.tensor(b, k, m)).data<float>().ToArray();

        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < m; j++)
            {
                double expected = 0;
                for (int t = 0; t < k; t++) expected += a[i * k + t] * b[t * m + j];
                Assert.Equal(expected, actual[i * m + j], 5);
            }
        }
    }

    [LinuxFact]
    public void Build_output_copies_of_the_native_library_load_on_this_system()
    {
        string? libstdcxx = ElfVersions.FindSystemLibstdcxx();
        Assert.NotNull(libstdcxx);
        HashSet<string> defined = ElfVersions.ReadDefinitions(libstdcxx!);
        Assert.Contains("GLIBCXX_3.4", defined);

        string[] copies = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).ToArray();
        Assert.NotEmpty(copies);
        foreach (string copy in copies)
        {
            // Every libstdc++ version the library needs is either defined by the system or marked weak.
            var unmet = ElfVersions.ReadNeeds(copy)
                .Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal) && !n.IsWeak && !defined.Contains(n.Version))
                .Select(n => n.Version);
            Assert.Empty(unmet);
            Assert.Null(TorchRuntime.Diagnose(AppContext.BaseDirectory));
        }
    }

    [LinuxFact]
    public void MarkWeak_sets_only_the_weak_flag_of_the_named_requirement_and_is_idempotent()
    {
        string source = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).First();
        string dir = Directory.CreateTempSubdirectory("yinghub-elf-").FullName;
        try
        {
            string copy = Path.Combine(dir, "libLibTorchSharp.so");
            File.Copy(source, copy);
            ElfVersionNeed need = ElfVersions.ReadNeeds(copy).Single(n => n.Version == "GLIBCXX_3.4.32");
            Assert.Equal("libstdc++.so.6", need.File);

            // Undo the build step's patch (if any) on the temporary copy, so the test starts from the original state.
            byte[] bytes = File.ReadAllBytes(copy);
            bytes[need.FlagsOffset] &= unchecked((byte)~ElfVersions.VerFlgWeak);
            File.WriteAllBytes(copy, bytes);
            Assert.False(ElfVersions.ReadNeeds(copy).Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak);

            // The diagnosis names the unmet version when the system lacks it.
            string? libstdcxx = ElfVersions.FindSystemLibstdcxx();
            bool systemHasIt = libstdcxx is not null && ElfVersions.ReadDefinitions(libstdcxx).Contains("GLIBCXX_3.4.32");
            string? diagnosis = TorchRuntime.Diagnose(dir);
            if (systemHasIt) Assert.Null(diagnosis);
            else Assert.Contains("GLIBCXX_3.4.32", diagnosis);

            byte[] before = File.ReadAllBytes(copy);
            Assert.True(ElfVersions.MarkWeak(copy, "GLIBCXX_3.4.32"));
            byte[] after = File.ReadAllBytes(copy);
            int[] changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToArray();
            Assert.Equal(new[] { (int)need.FlagsOffset }, changed);
            Assert.Equal(before[need.FlagsOffset] | ElfVersions.VerFlgWeak, after[need.FlagsOffset]);

            // Every other requirement is untouched; a second call changes nothing.
            var needsAfter = ElfVersions.ReadNeeds(copy);
            Assert.True(needsAfter.Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak);
            Assert.All(needsAfter.Where(n => n.Version != "GLIBCXX_3.4.32"), n => Assert.False(n.IsWeak));
            Assert.False(ElfVersions.MarkWeak(copy, "GLIBCXX_3.4.32"));
            Assert.Null(TorchRuntime.Diagnose(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void ReadNeeds_rejects_a_file_that_is_not_elf()
    {
        string path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "not an ELF file at all, but long enough to hold an ELF header of sixty-four bytes.");
            var ex = Assert.Throws<InvalidDataException>(() => ElfVersions.ReadNeeds(path));
            Assert.Contains("not an ELF file", ex.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
