using System.Text;
using Microsoft.Extensions.AI;

namespace YingHub.Moe.Extensions.AI;

/// <summary>
/// The chat template for models that have none: one plain-text line per turn, labelled by its role, and an open
/// assistant turn at the end for the model to continue.
/// <code>
/// System: You are a poet.
/// User: Write about the sea.
/// Assistant: The sea is wide.
/// User: And the moon?
/// Assistant:
/// </code>
/// Each turn is <c>{label}: {text}\n</c> with the labels <see cref="SystemLabel"/>, <see cref="UserLabel"/> and
/// <see cref="AssistantLabel"/>; <c>ChatOptions.Instructions</c>, when given, is a first system turn. The prompt ends
/// with <c>Assistant:</c> (no space: byte-level BPE tokenizers attach the space to the next word), so a reply usually
/// starts with a space; it is returned as the model wrote it. Generation stops where the model opens the next turn
/// (<see cref="StopSequences"/>). A message text holding a newline followed by a label reads as a new turn: the layout
/// has no escaping.
/// </summary>
public static class PlainTextChatTemplate
{
    /// <summary>The label of system turns.</summary>
    public const string SystemLabel = "System";

    /// <summary>The label of user turns.</summary>
    public const string UserLabel = "User";

    /// <summary>The label of assistant turns.</summary>
    public const string AssistantLabel = "Assistant";

    /// <summary>Where the model starts a new turn: a newline and a label with its colon. Added to a chat's stop sequences.</summary>
    public static IReadOnlyList<string> StopSequences { get; } = [$"\n{UserLabel}:", $"\n{SystemLabel}:", $"\n{AssistantLabel}:"];

    /// <summary>The prompt of <paramref name="messages"/>, ending with an open assistant turn.</summary>
    /// <param name="messages">System, user and assistant messages of text.</param>
    /// <param name="instructions">Optional instructions, written as a first system turn.</param>
    /// <exception cref="NotSupportedException">A message has another role (e.g. tool) or content other than text (images, tool calls).</exception>
    public static string Format(IEnumerable<ChatMessage> messages, string? instructions = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var prompt = new StringBuilder();
        if (!string.IsNullOrEmpty(instructions)) Turn(prompt, SystemLabel, instructions);
        int index = 0;
        foreach (ChatMessage message in messages)
        {
            string text = TextOf(message, index);
            Turn(prompt, LabelOf(message.Role, index), text);
            index++;
        }

        return prompt.Append(AssistantLabel).Append(':').ToString();
    }

    /// <summary>
    /// The messages' text as one plain prompt (no template): <paramref name="instructions"/> and each message's text,
    /// joined by newlines. What a completion model trained on plain text continues.
    /// </summary>
    /// <exception cref="NotSupportedException">A message has another role or content other than text.</exception>
    public static string Concatenate(IEnumerable<ChatMessage> messages, string? instructions = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var parts = new List<string>();
        if (!string.IsNullOrEmpty(instructions)) parts.Add(instructions);
        int index = 0;
        foreach (ChatMessage message in messages)
        {
            _ = LabelOf(message.Role, index);
            parts.Add(TextOf(message, index++));
        }

        return string.Join('\n', parts);
    }

    private static void Turn(StringBuilder prompt, string label, string text) => prompt.Append(label).Append(": ").Append(text).Append('\n');

    private static string LabelOf(ChatRole role, int index)
    {
        if (role == ChatRole.System) return SystemLabel;
        if (role == ChatRole.User) return UserLabel;
        if (role == ChatRole.Assistant) return AssistantLabel;
        throw new NotSupportedException($"Message {index} has the role '{role}': the model reads system, user and assistant turns only (no tools).");
    }

    /// <summary>A message's text; usage reports are skipped, anything else is refused.</summary>
    private static string TextOf(ChatMessage message, int index)
    {
        ArgumentNullException.ThrowIfNull(message);
        var text = new StringBuilder();
        foreach (AIContent content in message.Contents)
        {
            switch (content)
            {
                case TextContent t:
                    text.Append(t.Text);
                    break;
                case UsageContent:
                    break; // a previous response's token counts: not part of the conversation
                case FunctionCallContent or FunctionResultContent:
                    throw new NotSupportedException($"Message {index} holds a {content.GetType().Name}: the model cannot call tools.");
                default:
                    throw new NotSupportedException($"Message {index} holds a {content.GetType().Name}: the model reads text only (no images, audio or files).");
            }
        }

        return text.ToString();
    }
}
