import { caseFold } from 'unicode-case-folding';

/*
 * The form in which names and organizations are searched: people type
 * "STRAUSS" for "Strauß", "YILMAZ" for "Yılmaz", "jose" for "José", and macOS
 * sends "Núñez" decomposed (NFD) while a form elsewhere sent it composed.
 * The projections keep a folded copy of each searched text, and the query is
 * folded the same way, so that a search is a plain substring test of one
 * folded text in another (read-model-store.port.ts `contains`).
 */

/** Nonspacing and enclosing marks: the accents NFKD splits off (General_Category Mn, Me). */
const MARKS = /[\p{Mn}\p{Me}]/gu;
const DOTLESS_I = /\u0131/g;
/** A character outside ASCII (most names and organizations have none). */
const NOT_ASCII = /[\u0080-\u{10ffff}]/u;

/**
 * Folds text for a case-, accent- and form-insensitive substring search. Pure
 * and idempotent (`searchFold(searchFold(x)) === searchFold(x)`); canonically
 * equivalent inputs (NFC, NFD) fold alike. The folded copy is for matching
 * only: it is never shown, and the order of a list stays that of its own key.
 *
 * The rules, in order:
 * 1. Compatibility caseless form, Unicode Standard §3.13 D146:
 *    NFKD(toCasefold(NFKD(toCasefold(NFD(x))))). NFD/NFKD are UAX #15
 *    (ligatures "ﬁ" → "fi", full-width "Ａ" → "A", "℡" → "TEL"); toCasefold is
 *    full case folding, CaseFolding.txt statuses C and F (the table of the
 *    `unicode-case-folding` package): "ß" and "ẞ" → "ss", "İ" → "i" + U+0307,
 *    "ς" → "σ". The Turkic status-T mappings are not applied: "I" folds to "i"
 *    in every language.
 * 2. Dotless "ı" (U+0131) → "i": CaseFolding.txt leaves it alone (only the T
 *    mapping reaches it), but people without a Turkish keyboard type "i" for
 *    it, and "YILMAZ" must find "Yılmaz". Dotted "İ" already became "i" +
 *    U+0307 in step 1, and loses the dot in step 3.
 * 3. Nonspacing and enclosing marks (General_Category Mn, Me) removed: the
 *    accents NFKD split off ("é" → "e"), the dot of "İ", Hebrew and Arabic
 *    vowel points. Spacing marks (Mc) stay: in Indic scripts they are vowels,
 *    not accents.
 * 4. NFKD once more: removing a mark may bring two combining marks of a script
 *    next to each other out of canonical order; this puts them back, so that
 *    folding twice changes nothing.
 *
 * Whitespace is kept as it is (NFKD already made U+00A0 and U+3000 a plain
 * space); the callers trim a query.
 */
export function searchFold(text: string): string {
  // ASCII text is its own NFD and NFKD and holds no marks, and CaseFolding.txt maps
  // only A-Z there (to a-z): the rules below answer `toLowerCase()`, at a fraction of
  // the cost (four normalizations and two table lookups per character; a rebuild
  // folds 200,000 names). test/shared/search-folding.spec.ts checks the two agree.
  if (!NOT_ASCII.test(text)) return text.toLowerCase();
  return foldByTheRules(text);
}

/** The rules above, for any text. */
export function foldByTheRules(text: string): string {
  const caseless = caseFold(caseFold(text.normalize('NFD')).normalize('NFKD')).normalize('NFKD');
  return caseless.replace(DOTLESS_I, 'i').replace(MARKS, '').normalize('NFKD');
}
