using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Schedules;

public class WarmupCosineRestartsScheduleTests
{
    private const double Peak = 1e-3;
    private const double EtaMin = 1e-5;
    private const double Tolerance = 1e-15;

    private static WarmupCosineRestartsSchedule Create(long warmup, long t0, long tMult) => new(new WarmupCosineRestartsOptions
    {
        PeakLearningRate = Peak, MinLearningRate = EtaMin, WarmupSteps = warmup, FirstCycleSteps = t0, CycleMultiplier = tMult,
    });

    /// <summary>PyTorch's closed form (CosineAnnealingWarmRestarts.step(epoch)), written out independently.</summary>
    private static double PyTorchClosedForm(long epoch, long t0, long tMult)
    {
        double tCur, tI;
        if (epoch >= t0)
        {
            if (tMult == 1)
            {
                tCur = epoch % t0;
                tI = t0;
            }
            else
            {
                int n = (int)(Math.Log(epoch / (double)t0 * (tMult - 1) + 1) / Math.Log(tMult));
                tCur = epoch - t0 * (Math.Pow(tMult, n) - 1) / (tMult - 1);
                tI = t0 * Math.Pow(tMult, n);
            }
        }
        else
        {
            tI = t0;
            tCur = epoch;
        }

        return EtaMin + (Peak - EtaMin) * (1 + Math.Cos(Math.PI * tCur / tI)) / 2;
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(5L)]
    [InlineData(9L)]
    [InlineData(10L)]
    [InlineData(29L)]
    [InlineData(30L)]
    [InlineData(70L)]
    public void T0Of10_TMult2_MatchesPyTorchClosedForm(long epoch)
    {
        var schedule = Create(warmup: 0, t0: 10, tMult: 2);
        Assert.Equal(PyTorchClosedForm(epoch, 10, 2), schedule.At(epoch), Tolerance);
    }

    [Fact]
    public void T0Of10_TMult2_HandPickedValues()
    {
        var schedule = Create(warmup: 0, t0: 10, tMult: 2);
        // Cycles: [0,10) length 10, [10,30) length 20, [30,70) length 40, [70,150) length 80.
        Assert.Equal(Peak, schedule.At(0), Tolerance);
        Assert.Equal((Peak + EtaMin) / 2, schedule.At(5), Tolerance);
        Assert.Equal(Peak, schedule.At(10), Tolerance);
        Assert.Equal(Peak, schedule.At(30), Tolerance);
        Assert.Equal(Peak, schedule.At(70), Tolerance);
        Assert.Equal((Peak + EtaMin) / 2, schedule.At(50), Tolerance);
        Assert.Equal((19L, 20L), schedule.CycleAt(29));
        Assert.Equal((0L, 40L), schedule.CycleAt(30));
        Assert.Equal((0L, 80L), schedule.CycleAt(70));
    }

    [Theory]
    [InlineData(10L, 1L)]
    [InlineData(10L, 2L)]
    [InlineData(7L, 3L)]
    [InlineData(1L, 2L)]
    public void MatchesPyTorchStepByStepBookkeepingOver200Steps(long t0, long tMult)
    {
        const int Steps = 200;
        const long Warmup = 4;
        var schedule = Create(Warmup, t0, tMult);

        // PyTorch: __init__ sets T_cur = last_epoch = 0, T_i = T_0; each step(): T_cur += 1; if T_cur >= T_i: T_cur -= T_i; T_i *= T_mult.
        long tCur = 0, tI = t0;
        for (long step = 0; step < Steps; step++)
        {
            double expected;
            if (step < Warmup)
            {
                expected = Peak * (step + 1) / Warmup;
            }
            else
            {
                if (step > Warmup)
                {
                    tCur += 1;
                    if (tCur >= tI)
                    {
                        tCur -= tI;
                        tI *= tMult;
                    }
                }

                expected = EtaMin + (Peak - EtaMin) * (1 + Math.Cos(Math.PI * tCur / tI)) / 2;
            }

            Assert.Equal(expected, schedule.At(step), Tolerance);
        }
    }

    [Fact]
    public void WarmupBoundaries()
    {
        var schedule = Create(warmup: 5, t0: 10, tMult: 2);
        Assert.Equal(Peak * 1 / 5, schedule.At(0), Tolerance);
        Assert.Equal(Peak * 4 / 5, schedule.At(3), Tolerance);
        Assert.Equal(Peak, schedule.At(4), Tolerance);
        Assert.Equal(Peak, schedule.At(5), Tolerance); // first cycle starts at its peak
        Assert.Equal(PyTorchClosedForm(1, 10, 2), schedule.At(6), Tolerance);
        Assert.Equal(Peak, schedule.At(15), Tolerance); // restart at epoch 10
    }

    [Theory]
    [InlineData(0L, 1L, "FirstCycleSteps")]
    [InlineData(10L, 0L, "CycleMultiplier")]
    public void InvalidOptionsThrowNamingTheField(long t0, long tMult, string field)
    {
        var ex = Assert.Throws<ArgumentException>(() => Create(0, t0, tMult));
        Assert.Equal(field, ex.ParamName);
        Assert.Contains(field, ex.Message);
    }

    [Fact]
    public void NegativeStepThrows()
    {
        var ex = Assert.Throws<ArgumentException>(() => Create(0, 10, 2).At(-1));
        Assert.Equal("step", ex.ParamName);
    }
}
