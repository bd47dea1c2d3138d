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
        guard !path.hasPrefix("/") else { throw hostile("is absolute") }
        for byte in path.utf8 where byte < 0x20 || byte == 0x7f {
            throw hostile("contains a control character")
        }
        guard !path.contains("\\") else { throw hostile("contains a backslash") }
        // Compare bytes: Swift String equality is canonical equivalence, which would call NFD and NFC equal.
        guard Array(path.precomposedStringWithCanonicalMapping.utf8) == Array(path.utf8) else {
            throw hostile("is not in Unicode NFC form")
        }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard !component.isEmpty else { throw hostile("has an empty component") }
            guard component != ".", component != ".." else { throw hostile("has a '\(component)' component") }
            guard component.utf8.count <= maxComponentBytes else {
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
        for path in paths {
            var prefix = ""
            for component in path.split(separator: "/").dropLast() {
                prefix += (prefix.isEmpty ? "" : "/") + component
                if seen.contains(prefix) {
                    throw ManifestError(.hostilePath, "\"\(escape(prefix))\" is both a file and a folder")
                }
            }
        }
    }

    static func escape(_ path: String) -> String {
        String(path.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) }.prefix(200))
    }
}
