extension Duration {
    /// The whole nanoseconds of a non-negative duration (0 for a negative one), for `Timer`.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}
