namespace YingHub.Moe.Rewards;

/// <summary>The default word lists of <see cref="ShakespeareRewardOptions"/>; extend them with collection expressions.</summary>
/// <example><code>options.Keywords = [.. ShakespeareWordLists.EarlyModernKeywords, "gramercy"];</code></example>
public static class ShakespeareWordLists
{
    /// <summary>Early Modern English markers: pronouns, verb forms, contractions and adverbs (all lower-case).</summary>
    public static IReadOnlyList<string> EarlyModernKeywords { get; } =
    [
        "thou", "thee", "thy", "thine", "ye", "hath", "doth", "dost", "hast", "hadst", "art", "wilt", "shalt", "canst",
        "couldst", "wouldst", "shouldst", "mayst", "mightst", "didst", "wast", "'tis", "'twas", "'twere", "'twill",
        "ere", "prithee", "o'er", "e'er", "ne'er", "oft", "nay", "aye", "yea", "whence", "hence", "thence", "wherefore",
        "hither", "thither", "whither", "anon", "forsooth", "methinks", "perchance", "verily", "betwixt", "'gainst",
        "alack", "alas", "fie", "sirrah", "beseech", "troth", "mine eyes",
    ];

    /// <summary>Modern vocabulary that breaks an Early Modern register (all lower-case).</summary>
    public static IReadOnlyList<string> ModernWords { get; } =
    [
        "internet", "online", "computer", "computers", "phone", "phones", "smartphone", "cellphone", "email", "emails",
        "website", "app", "apps", "software", "laptop", "tablet", "television", "tv", "radio", "video", "videos",
        "car", "cars", "airplane", "plane", "train", "bus", "okay", "ok", "selfie", "wifi", "download", "upload",
        "emoji", "blog", "digital", "cyber", "robot", "robots", "facebook", "google", "twitter", "youtube",
        "instagram", "tiktok", "text message", "social media", "lol", "cool", "awesome", "guys", "gonna", "wanna",
    ];
}
