namespace YingHub.Moe.Rewards.Tests;

/// <summary>Verse whose rhyme scheme and meter are known.</summary>
internal static class Texts
{
    public const string Sonnet18 = """
        Shall I compare thee to a summer's day?
        Thou art more lovely and more temperate:
        Rough winds do shake the darling buds of May,
        And summer's lease hath all too short a date;
        Sometime too hot the eye of heaven shines,
        And often is his gold complexion dimm'd;
        And every fair from fair sometime declines,
        By chance or nature's changing course untrimm'd;
        But thy eternal summer shall not fade,
        Nor lose possession of that fair thou ow'st;
        Nor shall Death brag thou wander'st in his shade,
        When in eternal lines to time thou grow'st:
           So long as men can breathe or eyes can see,
           So long lives this, and this gives life to thee.
        """;

    /// <summary>Sonnet 18, lines 5–8: an ABAB quatrain of perfect rhymes.</summary>
    public const string Sonnet18SecondQuatrain = """
        Sometime too hot the eye of heaven shines,
        And often is his gold complexion dimm'd;
        And every fair from fair sometime declines,
        By chance or nature's changing course untrimm'd;
        """;

    /// <summary>Gray, Elegy Written in a Country Churchyard, first quatrain (ABAB).</summary>
    public const string GrayElegy = """
        The curfew tolls the knell of parting day,
        The lowing herd wind slowly o'er the lea,
        The plowman homeward plods his weary way,
        And leaves the world to darkness and to me.
        """;

    /// <summary>Sonnet 18's closing couplet (AA).</summary>
    public const string Couplet = """
        So long as men can breathe or eyes can see,
        So long lives this, and this gives life to thee.
        """;

    public const string AabbQuatrain = """
        The cat sat down upon the mat
        And wore a very silly hat
        The dog ran out into the night
        And gave the birds a dreadful fright
        """;
}
