using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace YingHub.Moe.Core.Configuration;

/// <summary>
/// Options objects as sections of a JSON config file, strictly: a section sets exactly the properties it names on an
/// object that already holds the defaults, an unknown key is an error naming it and the section's keys, a value of
/// the wrong type is an error naming its key and the expected type. Keys are those of the serializer's own contract
/// (<see cref="JsonPropertyNameAttribute"/> where given, else the naming policy), so a new option needs no table entry.
/// Keys starting with <c>_</c> (<c>_source</c>, <c>_comment</c>) are notes and are skipped.
/// </summary>
public static class OptionsJson
{
    /// <summary>
    /// Config-file conventions: snake_case keys and enum values, nullable annotations respected (a non-nullable
    /// setting refuses null), comments and trailing commas allowed, indented output.
    /// </summary>
    public static JsonSerializerOptions SnakeCase { get; } = Freeze(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    });

    /// <summary>
    /// The conventions of <see cref="MoeModelOptions"/>' <c>config.json</c>: the keys its attributes name (Hugging Face's
    /// where one exists) and enum values as their C# names, read case-insensitively.
    /// </summary>
    public static JsonSerializerOptions ModelConfig { get; } = Freeze(new JsonSerializerOptions());

    /// <summary>The keys a section of <paramref name="type"/> may hold, in declaration order.</summary>
    public static IReadOnlyList<string> Keys(Type type, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(options);
        return options.GetTypeInfo(type).Properties.Select(p => p.Name).ToArray();
    }

    /// <summary>Reads <paramref name="section"/> into a new <typeparamref name="T"/> that starts from its defaults.</summary>
    /// <exception cref="InvalidDataException">An unknown key or a value of the wrong type; the message names it with <paramref name="path"/>.</exception>
    public static T Read<T>(JsonObject section, string path, JsonSerializerOptions options) where T : new()
    {
        var target = new T();
        Populate(target, section, path, options);
        return target;
    }

    /// <summary>
    /// Sets on <paramref name="target"/> each property <paramref name="section"/> names, leaving the others as they are.
    /// A nested options object given as a JSON object is read whole (its unnamed keys take that type's defaults).
    /// </summary>
    /// <param name="target">The options object to change.</param>
    /// <param name="section">The JSON object of settings.</param>
    /// <param name="path">The section's name in messages, e.g. <c>trainer</c>.</param>
    /// <param name="options">The serializer conventions (<see cref="SnakeCase"/> or <see cref="ModelConfig"/>).</param>
    /// <exception cref="InvalidDataException">An unknown key (the message lists the allowed ones) or a value of the wrong type.</exception>
    public static void Populate(object target, JsonObject section, string path, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(section);
        ArgumentNullException.ThrowIfNull(options);
        var info = options.GetTypeInfo(target.GetType());
        CheckKeys(section, info, path, options);
        var byName = info.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var (key, value) in section)
        {
            if (IsNote(key)) continue;
            var property = byName[key];
            if (property.Set is null) throw new InvalidDataException($"{path}.{key} cannot be set.");
            object? typed = Value(value, property.PropertyType, $"{path}.{key}", options);
            if (typed is null && !property.IsSetNullable)
                throw new InvalidDataException($"{path}.{key} must be {Describe(property.PropertyType, options)}; got null.");
            property.Set(target, typed);
        }
    }

    /// <summary>Every property of <paramref name="value"/> as a JSON object with the section's keys.</summary>
    public static JsonObject Write(object value, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(options);
        return JsonSerializer.SerializeToNode(value, value.GetType(), options)!.AsObject();
    }

    /// <summary>
    /// The key path of an <see cref="OptionError.Field"/> of <paramref name="type"/> (<c>ModuleGradientClip.OtherMaxNorm</c>
    /// → <c>module_gradient_clip.other_max_norm</c>); a segment it cannot map stays as it is.
    /// </summary>
    public static string KeyOf(Type type, string field, JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(field);
        ArgumentNullException.ThrowIfNull(options);
        var keys = new List<string>();
        Type? current = type;
        foreach (string segment in field.Split('.'))
        {
            int bracket = segment.IndexOf('[', StringComparison.Ordinal);
            string member = bracket < 0 ? segment : segment[..bracket];
            var property = current is null ? null : options.GetTypeInfo(current).Properties
                .FirstOrDefault(p => p.AttributeProvider is MemberInfo m && m.Name == member);
            keys.Add(property is null ? segment : property.Name + (bracket < 0 ? "" : segment[bracket..]));
            current = property is null ? null : ElementOrSelf(property.PropertyType, options);
        }

        return string.Join('.', keys);
    }

    /// <summary>A key that is a note for readers (<c>_source</c>, <c>_comment</c>), not a setting.</summary>
    public static bool IsNote(string key) => key.StartsWith('_');

    private static object? Value(JsonNode? value, Type type, string path, JsonSerializerOptions options)
    {
        try
        {
            return value.Deserialize(type, options);
        }
        catch (Exception ex) when (ex is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
        {
            string detail = ex is JsonException { InnerException: ArgumentException inner } ? $" ({inner.Message})"
                : ex is JsonException { InnerException: null, Path: null } ? $" ({ex.Message})" : "";
            throw new InvalidDataException($"{path} must be {Describe(type, options)}; got {value?.ToJsonString() ?? "null"}{detail}.", ex);
        }
    }

    private static void CheckKeys(JsonObject section, JsonTypeInfo info, string path, JsonSerializerOptions options)
    {
        var byName = info.Properties.ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var (key, value) in section)
        {
            if (IsNote(key)) continue;
            if (!byName.TryGetValue(key, out var property))
                throw new InvalidDataException($"{path}: unknown key '{key}'; the allowed keys are {string.Join(", ", byName.Keys)}.");
            var nested = options.GetTypeInfo(Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType);
            if (value is JsonObject obj && nested.Kind == JsonTypeInfoKind.Object) CheckKeys(obj, nested, $"{path}.{key}", options);
            if (value is JsonArray array && nested.Kind == JsonTypeInfoKind.Enumerable && nested.ElementType is { } element
                && options.GetTypeInfo(element) is { Kind: JsonTypeInfoKind.Object } elementInfo)
            {
                for (int i = 0; i < array.Count; i++)
                {
                    if (array[i] is JsonObject item) CheckKeys(item, elementInfo, $"{path}.{key}[{i}]", options);
                }
            }
        }
    }

    private static Type? ElementOrSelf(Type type, JsonSerializerOptions options)
    {
        var info = options.GetTypeInfo(Nullable.GetUnderlyingType(type) ?? type);
        return info.Kind switch
        {
            JsonTypeInfoKind.Object => info.Type,
            JsonTypeInfoKind.Enumerable => info.ElementType,
            _ => null,
        };
    }

    private static string Describe(Type type, JsonSerializerOptions options)
    {
        Type? underlying = Nullable.GetUnderlyingType(type);
        string orNull = underlying is null ? "" : " or null";
        type = underlying ?? type;
        if (type.IsEnum)
        {
            var names = Enum.GetValues(type).Cast<object>().Select(v => JsonSerializer.Serialize(v, type, options));
            return $"one of {string.Join(", ", names)}{orNull}";
        }

        if (type == typeof(int) || type == typeof(long)) return "an integer" + orNull;
        if (type == typeof(double) || type == typeof(float)) return "a number" + orNull;
        if (type == typeof(bool)) return "true or false" + orNull;
        if (type == typeof(string)) return "a string";
        var info = options.GetTypeInfo(type);
        if (info.Kind == JsonTypeInfoKind.Enumerable && info.ElementType == typeof(string)) return "an array of strings";
        if (info.Kind == JsonTypeInfoKind.Object) return $"an object with the keys {string.Join(", ", info.Properties.Select(p => p.Name))}";
        return $"a valid {type.Name}";
    }

    private static JsonSerializerOptions Freeze(JsonSerializerOptions options)
    {
        options.RespectNullableAnnotations = true;
        options.ReadCommentHandling = JsonCommentHandling.Skip;
        options.AllowTrailingCommas = true;
        options.WriteIndented = true;
        options.TypeInfoResolver = new DefaultJsonTypeInfoResolver();
        options.MakeReadOnly();
        return options;
    }
}
