// The libstdc++ compatibility step for TorchSharp's native library on Linux.
//
// TorchSharp 0.107's libLibTorchSharp.so was linked against GCC 13's libstdc++ and asks for the symbol version
// GLIBCXX_3.4.32 (only for std::ios_base_library_init()). Debian 12 and Ubuntu 22.04 ship libstdc++ up to
// GLIBCXX_3.4.30, so the dynamic loader refuses the library. Marking that one version requirement weak
// (Elf64_Vernaux.vna_flags |= VER_FLG_WEAK) lets the loader accept it; two bytes of the file change.
//
// This file is compiled twice: by MSBuild's RoslynCodeTaskFactory into the PatchLibstdcxxCompat task (see
// YingHub.Moe.Core.targets), and into YingHub.Moe.Core with YINGHUB_NO_MSBUILD_TASK defined (the task class is left out there,
// so the library needs no MSBuild assemblies; the runtime diagnostics and the tests use the ELF reader). Base class library only.
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace YingHub.Moe.Build
{
    /// <summary>One version requirement (Elf64_Vernaux) of a shared library, with where its flags live.</summary>
    internal sealed class ElfVersionNeed
    {
        public ElfVersionNeed(string file, string version, ushort flags, long flagsOffset)
        {
            File = file;
            Version = version;
            Flags = flags;
            FlagsOffset = flagsOffset;
        }

        /// <summary>The library the requirement is on (vn_file), e.g. <c>libstdc++.so.6</c>.</summary>
        public string File { get; }

        /// <summary>The version name, e.g. <c>GLIBCXX_3.4.32</c>.</summary>
        public string Version { get; }

        /// <summary>vna_flags; bit 0x2 is VER_FLG_WEAK.</summary>
        public ushort Flags { get; }

        /// <summary>File offset of vna_flags (two little-endian bytes).</summary>
        public long FlagsOffset { get; }

        /// <summary>Whether the requirement is already weak.</summary>
        public bool IsWeak => (Flags & ElfVersions.VerFlgWeak) != 0;
    }

    /// <summary>Reads ELF64 little-endian symbol-version sections (.gnu.version_r and .gnu.version_d).</summary>
    internal static class ElfVersions
    {
        /// <summary>VER_FLG_WEAK: a missing version is not fatal.</summary>
        public const ushort VerFlgWeak = 0x2;

        private const uint ShtGnuVerdef = 0x6ffffffd;
        private const uint ShtGnuVerneed = 0x6ffffffe;

        /// <summary>Every version requirement of the library at <paramref name="path"/>.</summary>
        public static List<ElfVersionNeed> ReadNeeds(string path)
        {
            byte[] elf = System.IO.File.ReadAllBytes(path);
            var needs = new List<ElfVersionNeed>();
            foreach (Section s in Sections(elf, path).Where(s => s.Type == ShtGnuVerneed))
            {
                Section strtab = SectionAt(elf, path, (int)s.Link);
                long vn = s.Offset;
                for (uint i = 0; i < s.Info; i++)
                {
                    // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32
                    ushort count = U16(elf, vn + 2, path);
                    string file = CString(elf, strtab.Offset + U32(elf, vn + 4, path), path);
                    long aux = vn + U32(elf, vn + 8, path);
                    for (int j = 0; j < count; j++)
                    {
                        // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32
                        ushort flags = U16(elf, aux + 4, path);
                        string name = CString(elf, strtab.Offset + U32(elf, aux + 8, path), path);
                        needs.Add(new ElfVersionNeed(file, name, flags, aux + 4));
                        uint nextAux = U32(elf, aux + 12, path);
                        if (nextAux == 0) break;
                        aux += nextAux;
                    }

                    uint next = U32(elf, vn + 12, path);
                    if (next == 0) break;
                    vn += next;
                }
            }

            return needs;
        }

        /// <summary>Every version a library defines (.gnu.version_d), e.g. GLIBCXX_3.4.30 for a libstdc++.</summary>
        public static HashSet<string> ReadDefinitions(string path)
        {
            byte[] elf = System.IO.File.ReadAllBytes(path);
            var defs = new HashSet<string>(StringComparer.Ordinal);
            foreach (Section s in Sections(elf, path).Where(s => s.Type == ShtGnuVerdef))
            {
                Section strtab = SectionAt(elf, path, (int)s.Link);
                long vd = s.Offset;
                for (uint i = 0; i < s.Info; i++)
                {
                    // Elf64_Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32
                    long aux = vd + U32(elf, vd + 12, path);
                    // Elf64_Verdaux: vda_name u32, vda_next u32 (the first one names the version itself)
                    defs.Add(CString(elf, strtab.Offset + U32(elf, aux, path), path));
                    uint next = U32(elf, vd + 16, path);
                    if (next == 0) break;
                    vd += next;
                }
            }

            return defs;
        }

        /// <summary>
        /// Marks the requirement on <paramref name="version"/> weak in place. Returns true when the file changed,
        /// false when it was already weak or has no such requirement.
        /// </summary>
        public static bool MarkWeak(string path, string version)
        {
            ElfVersionNeed? need = ReadNeeds(path).FirstOrDefault(n => n.Version == version);
            if (need == null || need.IsWeak) return false;
            ushort flags = (ushort)(need.Flags | VerFlgWeak);
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.None))
            {
                stream.Position = need.FlagsOffset;
                stream.WriteByte((byte)(flags & 0xff));
                stream.WriteByte((byte)(flags >> 8));
            }

            return true;
        }

        /// <summary>
        /// The libstdc++ the dynamic loader is most likely to pick: the first <c>libstdc++.so.6</c> on
        /// LD_LIBRARY_PATH, then in the usual system directories; null when none is found.
        /// </summary>
        public static string? FindSystemLibstdcxx()
        {
            var dirs = new List<string>();
            string? ldPath = Environment.GetEnvironmentVariable("LD_LIBRARY_PATH");
            if (!string.IsNullOrEmpty(ldPath)) dirs.AddRange(ldPath!.Split(new[] { ':' }, StringSplitOptions.RemoveEmptyEntries));
            dirs.AddRange(new[]
            {
                "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib64", "/usr/local/lib",
            });
            return dirs.Select(d => Path.Combine(d, "libstdc++.so.6")).FirstOrDefault(System.IO.File.Exists);
        }

        private readonly struct Section
        {
            public Section(uint type, long offset, uint link, uint info)
            {
                Type = type;
                Offset = offset;
                Link = link;
                Info = info;
            }

            public uint Type { get; }
            public long Offset { get; }
            public uint Link { get; }
            public uint Info { get; }
        }

        private static IEnumerable<Section> Sections(byte[] elf, string path)
        {
            CheckHeader(elf, path);
            ushort count = U16(elf, 0x3C, path);
            for (int i = 0; i < count; i++) yield return SectionAt(elf, path, i);
        }

        private static Section SectionAt(byte[] elf, string path, int index)
        {
            long shoff = (long)U64(elf, 0x28, path);
            ushort shentsize = U16(elf, 0x3A, path);
            ushort count = U16(elf, 0x3C, path);
            if (index < 0 || index >= count) throw Bad(path, $"section index {index} is outside 0..{count - 1}");
            long h = shoff + (long)index * shentsize;
            // Elf64_Shdr: sh_name u32, sh_type u32, sh_flags u64, sh_addr u64, sh_offset u64, sh_size u64, sh_link u32, sh_info u32, ...
            return new Section(U32(elf, h + 4, path), (long)U64(elf, h + 24, path), U32(elf, h + 40, path), U32(elf, h + 44, path));
        }

        private static void CheckHeader(byte[] elf, string path)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw Bad(path, "not an ELF file");
            if (elf[4] != 2 || elf[5] != 1) throw Bad(path, "not a 64-bit little-endian ELF file");
        }

        private static ushort U16(byte[] b, long at, string path)
        {
            Check(b, at, 2, path);
            return (ushort)(b[at] | (b[at + 1] << 8));
        }

        private static uint U32(byte[] b, long at, string path)
        {
            Check(b, at, 4, path);
            return (uint)(b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24));
        }

        private static ulong U64(byte[] b, long at, string path) => U32(b, at, path) | ((ulong)U32(b, at + 4, path) << 32);

        private static string CString(byte[] b, long at, string path)
        {
            Check(b, at, 1, path);
            long end = at;
            while (end < b.Length && b[end] != 0) end++;
            return Encoding.ASCII.GetString(b, (int)at, (int)(end - at));
        }

        private static void Check(byte[] b, long at, int size, string path)
        {
            if (at < 0 || at + size > b.Length) throw Bad(path, $"offset {at} is outside the file ({b.Length} bytes)");
        }

        private static InvalidDataException Bad(string path, string why) =>
            new InvalidDataException($"'{path}': {why}.");
    }

#if !YINGHUB_NO_MSBUILD_TASK
    /// <summary>
    /// MSBuild task: in every copy of libLibTorchSharp.so under <see cref="Directories"/>, marks the requirement on
    /// <see cref="Version"/> weak when the system libstdc++ does not define that version, and logs one line.
    /// </summary>
    public sealed class PatchLibstdcxxCompat : Microsoft.Build.Utilities.Task
    {
        /// <summary>Output directories to search (recursively) for libLibTorchSharp.so.</summary>
        [Microsoft.Build.Framework.Required]
        public string[] Directories { get; set; } = Array.Empty<string>();

        /// <summary>The version requirement to relax.</summary>
        public string Version { get; set; } = "GLIBCXX_3.4.32";

        /// <summary>The project, for the log line.</summary>
        public string ProjectName { get; set; } = "";

        public override bool Execute()
        {
            var copies = Directories.Where(Directory.Exists)
                .SelectMany(d => Directory.EnumerateFiles(d, "libLibTorchSharp.so", SearchOption.AllDirectories))
                .Distinct()
                .ToList();
            if (copies.Count == 0) return true;

            string? libstdcxx = ElfVersions.FindSystemLibstdcxx();
            if (libstdcxx != null && ElfVersions.ReadDefinitions(libstdcxx).Contains(Version))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                    $"YingHub.Moe libstdc++ compat ({ProjectName}): not needed, {libstdcxx} defines {Version}.");
                return true;
            }

            int changed = 0, unchanged = 0;
            foreach (string copy in copies)
            {
                if (ElfVersions.MarkWeak(copy, Version)) changed++;
                else unchanged++;
            }

            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High,
                $"YingHub.Moe libstdc++ compat ({ProjectName}): {libstdcxx ?? "no system libstdc++.so.6 found"} lacks {Version}; " +
                $"marked it weak in {changed} copies of libLibTorchSharp.so ({unchanged} already weak or not requiring it).");
            return true;
        }
    }
#endif
}
