using Mono.Cecil;

// Usage: MLNetPublicizer INPUT.dll OUTPUT.dll
// Makes internal (assembly and private-protected) types, methods and fields public. Private members stay
// private, and protected / protected-internal virtual methods keep their accessibility so that overrides
// compiled against the copy still match the real assembly at run time.
if (args.Length != 2)
{
    Console.Error.WriteLine("Usage: MLNetPublicizer INPUT.dll OUTPUT.dll");
    return 2;
}
var (input, output) = (args[0], args[1]);
var resolver = new DefaultAssemblyResolver();
resolver.AddSearchDirectory(Path.GetDirectoryName(Path.GetFullPath(input))!);
using var assembly = AssemblyDefinition.ReadAssembly(input, new ReaderParameters { AssemblyResolver = resolver, ReadSymbols = false });
int types = 0, methods = 0, fields = 0;
foreach (var module in assembly.Modules)
    foreach (var type in module.GetTypes())
    {
        if (type.Name.StartsWith('<')) continue; // compiler-generated
        if (type.IsNested ? (type.IsNestedAssembly || type.IsNestedFamilyAndAssembly || type.IsNestedFamilyOrAssembly) : type.IsNotPublic)
        {
            type.Attributes = (type.Attributes & ~TypeAttributes.VisibilityMask) | (type.IsNested ? TypeAttributes.NestedPublic : TypeAttributes.Public);
            types++;
        }
        foreach (var method in type.Methods)
        {
            bool widen = method.IsAssembly || method.IsFamilyAndAssembly || (method.IsFamilyOrAssembly && !method.IsVirtual);
            if (!widen) continue;
            method.Attributes = (method.Attributes & ~MethodAttributes.MemberAccessMask) | MethodAttributes.Public;
            methods++;
        }
        foreach (var field in type.Fields)
        {
            if (field.Name.StartsWith('<')) continue;
            if (!(field.IsAssembly || field.IsFamilyAndAssembly || field.IsFamilyOrAssembly)) continue;
            field.Attributes = (field.Attributes & ~FieldAttributes.FieldAccessMask) | FieldAttributes.Public;
            fields++;
        }
    }
Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(output))!);
assembly.Write(output);
Console.WriteLine($"MLNetPublicizer: {Path.GetFileName(input)} → {output} ({types} types, {methods} methods, {fields} fields made public)");
return 0;
