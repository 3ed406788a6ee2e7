/// Text for the inside of a JSON string that Gatehouse writes by hand (error bodies, audit lines).
///
/// Guarantees: `"` and `\` are escaped, and every control character, DEL and the line and
/// paragraph separators (U+2028, U+2029) are written as `\uXXXX`, so nothing a client sent can end
/// the string, the object, or the line it is on.
public enum JSONText {
    public static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
