import Foundation

/// The rules every file path in a manifest obeys (Protocol/manifest-v1.md, "Paths"). A fetcher applies them again
/// before it creates anything, so no manifest can make it write outside the folder it was given.
public enum PathRules {
    public static let maxPathBytes = 1024
    public static let maxComponentBytes = 255

    /// Checks one path: relative, `/`-separated, NFC, no empty, `.` or `..` components, no backslash, no NUL or
    /// other control characters, within the length limits.
    public static func validate(_ path: String) throws(ManifestError) {
        func hostile(_ why: String) -> ManifestError {
            ManifestError(.hostilePath, "the path \"\(escape(path))\" \(why)")
        }
        guard !path.isEmpty else { throw hostile("is empty") }
        guard path.utf8.count <= maxPathBytes else { throw hostile("is longer than \(maxPathBytes) bytes") }
        // Every check here works on UTF-8 bytes: Swift's Character view would merge "/" with a following combining
        // mark into one grapheme, hiding a separator (so "../\u{301}x" would look like one harmless component).
        let bytes = Array(path.utf8)
        guard bytes.first != 0x2F else { throw hostile("is absolute") }
        for byte in bytes where byte < 0x20 || byte == 0x7f {
            throw hostile("contains a control character")
        }
        guard !bytes.contains(0x5C) else { throw hostile("contains a backslash") }
        // Compare bytes: Swift String equality is canonical equivalence, which would call NFD and NFC equal.
        guard Array(path.precomposedStringWithCanonicalMapping.utf8) == Array(path.utf8) else {
            throw hostile("is not in Unicode NFC form")
        }
        for component in bytes.split(separator: 0x2F, omittingEmptySubsequences: false) {
            guard !component.isEmpty else { throw hostile("has an empty component") }
            guard Array(component) != [0x2E], Array(component) != [0x2E, 0x2E] else {
                throw hostile("has a '.' or '..' component")
            }
            guard component.count <= maxComponentBytes else {
                throw hostile("has a component longer than \(maxComponentBytes) bytes")
            }
        }
    }

    /// Checks a set of paths: each valid, no two equal, none differing only in case (they would collide on
    /// case-insensitive file systems), and no path that is also a folder of another.
    public static func validate(all paths: [String]) throws(ManifestError) {
        var seen = Set<String>()
        var folded = Set<String>()
        for path in paths {
            try validate(path)
            guard seen.insert(path).inserted else {
                throw ManifestError(.hostilePath, "the path \"\(escape(path))\" appears twice")
            }
            guard folded.insert(path.lowercased()).inserted else {
                throw ManifestError(.hostilePath, "the path \"\(escape(path))\" differs from another only in case")
            }
        }
        let seenBytes = Set(paths.map { Array($0.utf8) })
        for path in paths {
            var prefix: [UInt8] = []
            for component in Array(path.utf8).split(separator: 0x2F).dropLast() {
                prefix += (prefix.isEmpty ? [] : [0x2F]) + component
                if seenBytes.contains(prefix) {
                    throw ManifestError(
                        .hostilePath,
                        "\"\(escape(String(decoding: prefix, as: UTF8.self)))\" is both a file and a folder")
                }
            }
        }
    }

    static func escape(_ path: String) -> String {
        String(path.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) }.prefix(200))
    }
}
