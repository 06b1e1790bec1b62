using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;

namespace YingHub.Moe.Core.Tests.Configuration;

public class OptionChecksTests
{
    /// <summary>A model and its sampling settings, as a host might bind them from one section.</summary>
    private sealed class Serving : IValidatableOptions
    {
        public MoeModelOptions Model { get; set; } = new();

        public SamplingOptions? Sampling { get; set; }

        public IReadOnlyList<OptionError> GetValidationErrors()
        {
            var errors = new List<OptionError>();
            errors.AddNested(nameof(Model), Model);
            errors.AddNested(nameof(Sampling), Sampling);
            return errors;
        }
    }

    [Fact]
    public void Nested_errors_carry_the_property_as_a_prefix()
    {
        Assert.Empty(new Serving().GetValidationErrors()); // a null nested object adds nothing
        var serving = new Serving { Model = new MoeModelOptions { TopK = 0 }, Sampling = new SamplingOptions { TopP = 1.5 } };

        IReadOnlyList<OptionError> errors = serving.GetValidationErrors();

        Assert.Equal(new[] { "Model.TopK", "Sampling.TopP" }, errors.Select(e => e.Field));
        Assert.Equal("Sampling.TopP = 1.5 is invalid; allowed: (0, 1], or null.", errors[1].Message);
        Assert.Equal((object)0, errors[0].Value);
    }

    [Fact]
    public void ThrowIfInvalid_names_the_given_parameter_or_else_the_first_bad_field()
    {
        var options = new SamplingOptions { Temperature = 0, RepetitionWindow = 0 };

        var named = Assert.Throws<ArgumentException>(() => options.ThrowIfInvalid("sampling"));
        var unnamed = Assert.Throws<ArgumentException>(() => options.ThrowIfInvalid());

        Assert.Equal("sampling", named.ParamName);
        Assert.Equal("Temperature", unnamed.ParamName);
        Assert.StartsWith("Invalid SamplingOptions: Temperature = 0 is invalid; allowed: (0, 100]. RepetitionWindow = 0 is invalid; allowed: [1, 1000000].", named.Message);
        new SamplingOptions().ThrowIfInvalid(); // valid: no exception
    }

    [Fact]
    public void The_generic_validator_reports_each_message()
    {
        var validator = new ValidatableOptionsValidator<SamplingOptions>();
        Assert.Same(ValidateOptionsResult.Success, validator.Validate(null, new SamplingOptions()));
        ValidateOptionsResult result = validator.Validate(null, new SamplingOptions { StopSequences = [[1, 2], []] });
        Assert.Equal(new[] { "StopSequences = [[1,2], []] is invalid; allowed: a list of non-empty token-id sequences." }, result.Failures!);
    }
}
