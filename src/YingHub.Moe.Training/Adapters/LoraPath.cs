using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>A parameter-free container that nests the layers under their dotted module paths.</summary>
internal sealed class LoraPath : nn.Module
{
    private LoraPath() : base(nameof(LoraPath)) => RegisterComponents();

    /// <summary>Registers <paramref name="layer"/> under <paramref name="parent"/> at the dotted <paramref name="path"/>, making the containers on the way.</summary>
    public static void Register(nn.Module parent, string path, nn.Module layer)
    {
        int dot = path.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0)
        {
            parent.register_module(path, layer);
            return;
        }

        string head = path[..dot];
        var child = parent.named_children().FirstOrDefault(c => c.name == head).module;
        if (child is null)
        {
            child = new LoraPath();
            parent.register_module(head, child);
        }

        Register(child, path[(dot + 1)..], layer);
    }
}
