namespace YingHub.Moe.Core.Modules;

/// <summary>
/// A model whose forward runs some of its linear submodules without <c>call</c> (reading their weights directly), so
/// forward hooks on them never fire; tools that work through hooks (LoRA adapters) refuse those submodules.
/// </summary>
public interface IUnhookedSubmodules
{
    /// <summary>The submodules' names as <c>named_modules()</c> gives them (e.g. <c>lm_head</c>).</summary>
    IReadOnlyCollection<string> UnhookedSubmodules { get; }
}
