// Ransom notes: a claim that the victim's files are encrypted, plus payment, decryption or
// contact instructions. Patterns allow any run of white space between words, so a note
// reformatted by the dropper still matches. The claim alone appears in security articles
// and in this kind of rule, so it needs two more note phrases to count as malicious.

rule ransom_note_phrasing
{
    meta:
        description = "ransom note: files encrypted, with payment or decryption instructions"
        severity = "malicious"
        malware_type = "ransomware"

    strings:
        $claim_encrypted = /\b(all\s+)?(of\s+)?your\s+(important\s+|personal\s+)?(files|documents|data|photos|databases)(\s+and\s+\w+)?\s+(have\s+been|has\s+been|were|are\s+now|are)\s+(encrypted|locked)\b/ nocase
        $claim_extension = /\b(files|documents)\s+(have\s+been|were)\s+encrypted\s+with\s+(strong\s+|military[-\s]grade\s+)?(encryption|algorithm|rsa|aes)/ nocase

        $pay_bitcoin = /\b(send|pay|transfer)\s[^\r\n]{0,80}\b(bitcoins?|btc|monero|xmr)\b/ nocase
        $pay_wallet = /\b(bitcoin|btc|monero)\s+(wallet|address)\b/ nocase
        $decrypt_key = /\b(private\s+key|decryption\s+(key|tool|software|program)|decryptor)\b/ nocase
        $decrypt_recover = /\b(recover|restore|decrypt|get\s+back)\s+(all\s+)?(of\s+)?your\s+(files|data|documents)\b/ nocase
        $contact_tor = /\b(tor\s+browser|[a-z2-7]{16,56}\.onion)\b/ nocase
        $threat_deadline = /\b(price|payment|amount)\s[^\r\n]{0,60}\b(double|increase)/ nocase
        $threat_delete = /\bfiles\s+will\s+be\s+(permanently\s+)?(deleted|lost|destroyed)\b/ nocase

    condition:
        any of ($claim_*) and 2 of ($pay_*, $decrypt_*, $contact_*, $threat_*)
}

rule ransom_note_claim
{
    meta:
        description = "text claims the reader's files were encrypted, with one note phrase"
        severity = "suspicious"
        malware_type = "ransomware"

    strings:
        $claim_encrypted = /\b(all\s+)?(of\s+)?your\s+(important\s+|personal\s+)?(files|documents|data|photos|databases)(\s+and\s+\w+)?\s+(have\s+been|has\s+been|were|are\s+now|are)\s+(encrypted|locked)\b/ nocase

        $pay_bitcoin = /\b(send|pay|transfer)\s[^\r\n]{0,80}\b(bitcoins?|btc|monero|xmr)\b/ nocase
        $pay_wallet = /\b(bitcoin|btc|monero)\s+(wallet|address)\b/ nocase
        $decrypt_key = /\b(private\s+key|decryption\s+(key|tool|software|program)|decryptor)\b/ nocase
        $decrypt_recover = /\b(recover|restore|decrypt|get\s+back)\s+(all\s+)?(of\s+)?your\s+(files|data|documents)\b/ nocase

    condition:
        $claim_encrypted and 1 of ($pay_*, $decrypt_*) and not ransom_note_phrasing
}
