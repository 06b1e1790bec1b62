using System.Buffers.Binary;
using System.Text;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class TensorBoardTrackerTests
{
    [Fact]
    public void Scalars_and_texts_are_tfrecord_framed_events_holding_the_tags()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-tb-").FullName;
        try
        {
            using (var tracker = new TensorBoardTracker(dir))
            {
                tracker.LogParameters(new Dictionary<string, string> { ["preset"] = "tiny" });
                tracker.LogMetrics(1, new Dictionary<string, double> { [MetricNames.TrainLoss] = 2.5, [MetricNames.ExpertLoad(0, 1)] = 0.5 });
                tracker.LogMetrics(2, new Dictionary<string, double> { [MetricNames.TrainLoss] = 2.4 });
                tracker.Complete(TrainingRunStatus.Finished);
            }

            string file = Assert.Single(Directory.GetFiles(dir, "events.out.tfevents.*"));
            byte[] bytes = File.ReadAllBytes(file);
            List<byte[]> records = ReadRecords(bytes);
            // file_version + 1 parameters text + 3 scalars + 1 status text
            Assert.Equal(6, records.Count);
            Assert.Contains("brain.Event:2", Encoding.UTF8.GetString(records[0]));
            Assert.Equal(2, records.Count(r => Contains(r, "train/loss")));
            Assert.Single(records, r => Contains(r, "expert_load/0/1"));
            Assert.Single(records, r => Contains(r, "parameters") && Contains(r, "| preset | tiny |"));
            Assert.Contains(records, r => Contains(r, "Finished"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Steps_beyond_32_bits_are_refused()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-tb-").FullName;
        try
        {
            using var tracker = new TensorBoardTracker(dir);
            var e = Assert.Throws<ArgumentException>(() => tracker.LogMetrics(1L << 31, new Dictionary<string, double> { ["lr"] = 1 }));
            Assert.Equal("step", e.ParamName);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>TFRecord framing: uint64 length, uint32 masked CRC of the length, data, uint32 masked CRC of the data.</summary>
    private static List<byte[]> ReadRecords(byte[] bytes)
    {
        var records = new List<byte[]>();
        int at = 0;
        while (at < bytes.Length)
        {
            Assert.True(bytes.Length - at >= 12, "truncated record header");
            long length = BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(at));
            Assert.InRange(length, 1, bytes.Length - at - 16);
            records.Add(bytes.AsSpan(at + 12, (int)length).ToArray());
            at += 12 + (int)length + 4;
        }

        Assert.Equal(bytes.Length, at); // the framing accounts for every byte
        return records;
    }

    private static bool Contains(byte[] record, string text) => record.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
}
