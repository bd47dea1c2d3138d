/// Sizes as people write them: `1048576`, `512 MiB`, `20GB`, `1.5 TiB`. Binary (KiB, MiB, GiB, TiB) and decimal
/// (KB, MB, GB, TB) units; a bare number is bytes.
public enum ByteSize {
    public static func parse(_ text: String) -> UInt64? {
        let trimmed = text.filter { $0 != " " && $0 != "_" }
        let digitsEnd = trimmed.firstIndex(where: { !($0.isNumber || $0 == ".") }) ?? trimmed.endIndex
        guard let number = Double(trimmed[..<digitsEnd]), number >= 0 else { return nil }
        let unit = trimmed[digitsEnd...].lowercased()
        let multipliers: [String: Double] = [
            "": 1, "b": 1, "kib": 1024, "mib": 1_048_576, "gib": 1_073_741_824, "tib": 1_099_511_627_776,
            "k": 1000, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
        ]
        guard let m = multipliers[unit] else { return nil }
        let value = number * m
        guard value < 1.8e19 else { return nil }
        return UInt64(value)
    }

    /// `1.23 GiB` style, for people.
    public static func format(_ bytes: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        let rounded = (value * 100).rounded() / 100
        return "\(rounded) \(units[unit])"
    }
}
