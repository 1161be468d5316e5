// ML.NET's model persistence API (ModelSaveContext/ModelLoadContext members, VersionInfo, LoadableClass,
// SchemaShape.Column's constructor) is internal. This library compiles against copies of those assemblies
// with internals made public (build/MLNetInternals.targets) and declares the attribute below, which
// CoreCLR honours: the real assemblies are loaded at run time and the calls are allowed.
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Core")]
[assembly: System.Runtime.CompilerServices.IgnoresAccessChecksTo("Microsoft.ML.Data")]

namespace System.Runtime.CompilerServices
{
    /// <summary>Recognized by the runtime by name: skips access checks into the named assembly.</summary>
    [AttributeUsage(AttributeTargets.Assembly, AllowMultiple = true)]
    internal sealed class IgnoresAccessChecksToAttribute(string assemblyName) : Attribute
    {
        public string AssemblyName { get; } = assemblyName;
    }
}
