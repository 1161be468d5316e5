using System;
using System.IO;
using System.Text;

// MSBuild inline task (compiled by RoslynCodeTaskFactory; see TorchSharpNativeFix.targets for why).
// Sets VER_FLG_WEAK on the Vernaux entry named VersionName in each ELF64 library's .gnu.version_r,
// but only when the system libstdc++ does not define that version.
public class WeakenMissingGlibcxxVersionNeed : Microsoft.Build.Utilities.Task
{
    public Microsoft.Build.Framework.ITaskItem[] Libraries { get; set; }
    public string VersionName { get; set; }

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlagWeak = 0x2;

    static readonly string[] LibstdcxxCandidates =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
        "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        string systemLib = null;
        foreach (var candidate in LibstdcxxCandidates)
            if (File.Exists(candidate)) { systemLib = candidate; break; }
        if (systemLib == null)
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "No system libstdc++.so.6 found; leaving TorchSharp's native library as shipped.");
            return true;
        }
        if (Contains(File.ReadAllBytes(systemLib), Encoding.ASCII.GetBytes(VersionName + "\0")))
        {
            Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, systemLib + " defines " + VersionName + "; no patch needed.");
            return true;
        }
        foreach (var item in Libraries)
        {
            var path = item.GetMetadata("FullPath");
            try
            {
                var bytes = File.ReadAllBytes(path);
                int changed = MarkWeak(bytes, VersionName);
                if (changed > 0)
                {
                    File.WriteAllBytes(path, bytes);
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Normal,
                        "Marked the " + VersionName + " need of " + path + " weak (system libstdc++ lacks it).");
                }
            }
            catch (Exception e)
            {
                Log.LogWarning("Could not patch " + path + ": " + e.Message + ". TorchSharp may fail to load on this system.");
            }
        }
        return !Log.HasLoggedErrors;
    }

    static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    // Returns how many Vernaux entries were newly marked weak (0 when already weak or absent).
    static int MarkWeak(byte[] elf, string versionName)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("only little-endian ELF64 is supported");
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        int changed = 0;
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize + 0x18));
            long need = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)need + 2);
                long aux = need + BitConverter.ToUInt32(elf, (int)need + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    long name = strtab + BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (ReadCString(elf, name) == versionName)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlagWeak) == 0)
                        {
                            flags |= VerFlagWeak;
                            elf[aux + 4] = (byte)(flags & 0xff);
                            elf[aux + 5] = (byte)(flags >> 8);
                            changed++;
                        }
                    }
                    aux += BitConverter.ToUInt32(elf, (int)aux + 12);
                }
                need += BitConverter.ToUInt32(elf, (int)need + 12);
            }
        }
        return changed;
    }

    static string ReadCString(byte[] bytes, long start)
    {
        long end = start;
        while (end < bytes.Length && bytes[end] != 0) end++;
        return Encoding.ASCII.GetString(bytes, (int)start, (int)(end - start));
    }
}
