import Foundation
import GatehouseCore

/// The sign-in page: plain HTML, no JavaScript, readable on a phone.
///
/// Guarantees: every value written into the page (the return path, a message) is HTML-escaped;
/// the page loads nothing from elsewhere, and the response carries a `Content-Security-Policy`
/// that forbids scripts and framing.
enum LoginPage {
    static func render(next: String, message: String?) -> String {
        var html = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Sign in · Gatehouse</title>
            <style>
            body{font-family:system-ui,sans-serif;max-width:22rem;margin:3rem auto;padding:0 1rem}
            label{display:block;margin-top:1rem}input[type=text],input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
            button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem}.message{color:#a00;margin-top:1rem}
            </style></head><body>
            <h1>Sign in</h1>

            """
        if let message { html += "<p class=\"message\" role=\"alert\">\(escape(message))</p>\n" }
        html += """
            <form method="post" action="/_gatehouse/login">
            <input type="hidden" name="next" value="\(escape(next))">
            <label for="username">User name</label>
            <input type="text" id="username" name="username" autocomplete="username" autocapitalize="none" required autofocus>
            <label for="password">Password</label>
            <input type="password" id="password" name="password" autocomplete="current-password" required>
            <label><input type="checkbox" name="remember" value="1"> Keep me signed in</label>
            <button type="submit">Sign in</button>
            </form>
            </body></html>

            """
        return html
    }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Headers every page Gatehouse serves itself carries.
    static let securityHeaders: [(String, String)] = [
        ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
    ]
}

/// `application/x-www-form-urlencoded` bodies, as browsers send them.
enum FormBody {
    /// The fields; nil when the body is not valid form encoding or UTF-8.
    static func parse(_ bytes: [UInt8]) -> [String: String]? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var out: [String: String] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]) else { return nil }
            guard let value = decode(parts.count > 1 ? parts[1] : "") else { return nil }
            if out[name] == nil { out[name] = value }
        }
        return out
    }

    private static func decode(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
