using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tracking;

/// <summary>A run's hyperparameters as the flat strings trackers log (<see cref="ITrainingTracker.LogParameters"/>).</summary>
public static class RunParameters
{
    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>
    /// <c>trainer.*</c> (<paramref name="options"/>), <c>model.*</c> (the model's options, by their config.json names),
    /// <c>trainer.Schedule</c> (the schedule's type) and the parameter counts <c>model.params_total</c>, <c>model.params_active</c>.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Flatten(TrainerOptions options, MoeForCausalLM model, ILearningRateSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(schedule);
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        void Add(string prefix, JsonElement element)
        {
            if (element.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in element.EnumerateObject()) Add($"{prefix}.{property.Name}", property.Value);
            }
            else if (element.ValueKind != JsonValueKind.Null)
            {
                result[prefix] = element.ValueKind == JsonValueKind.String ? element.GetString()! : element.GetRawText();
            }
        }

        Add("trainer", JsonSerializer.SerializeToElement(options, Json));
        Add("model", JsonSerializer.SerializeToElement(model.Options, Json));
        result["trainer.Schedule"] = schedule.GetType().Name;
        result["model.params_total"] = model.ParameterCount.ToString(CultureInfo.InvariantCulture);
        result["model.params_active"] = model.ActiveParameterCount.ToString(CultureInfo.InvariantCulture);
        return result;
    }
}
