import fc from 'fast-check';
import { foldByTheRules, searchFold } from '../../src/shared/search-folding';

/*
 * The folded form names are searched in (src/shared/search-folding.ts): the
 * cases people type, then the laws the read models rely on.
 */

const matches = (query: string, text: string) => searchFold(text).includes(searchFold(query));

describe('search folding', () => {
  it.each([
    ['STRAUSS', 'Strauß'],
    ['strauss', 'STRAUẞ'],
    ['Straße', 'Strasse'],
    ['YILMAZ', 'Yılmaz'],
    ['yilmaz', 'YILMAZ'],
    ['istanbul', 'İstanbul'],
    ['İSTANBUL', 'istanbul'],
    ['jose', 'José'],
    ['JOSÉ', 'jose'],
    ['nunez', 'Núñez'],
    ['N\u0075\u0301n\u0303ez', 'N\u00fa\u00f1ez'],
    ['N\u00fa\u00f1ez', 'N\u0075\u0301n\u0303ez'],
    ['οδοσ', 'ΟΔΟΣ'],
    ['οδος', 'Οδοσ'],
    ['file', 'ﬁle'],
    ['ACME', 'Ａｃｍｅ'],
    ['müller', 'MÜLLER'],
    ['muller', 'Müller'],
    ['dvorak', 'Dvořák'],
    ['łódź', 'ŁÓDŹ'],
    ['ann smith', 'Ann\u00a0Smith'],
  ])('%j finds %j', (query, text) => {
    expect(matches(query, text)).toBe(true);
  });

  it.each([
    ['ss', 'Sam'],
    ['jose', 'Josh'],
    ['lodz', 'Łódź'], // Ł is a letter of its own (no decomposition), not L with a mark
    ['ae', 'Æsir'], // likewise Æ
  ])('%j does not find %j', (query, text) => {
    expect(matches(query, text)).toBe(false);
  });

  it('folds the special cases as the rules say', () => {
    expect(searchFold('Strauß')).toBe('strauss');
    expect(searchFold('ẞ')).toBe('ss');
    expect(searchFold('Yılmaz')).toBe('yilmaz');
    expect(searchFold('İ')).toBe('i');
    expect(searchFold('ς')).toBe('σ');
    expect(searchFold('José Núñez')).toBe('jose nunez');
  });

  it('folds accents and combining marks alone to nothing', () => {
    expect(searchFold('\u0301')).toBe('');
    expect(searchFold('\u0301\u0308\u0327\u20dd')).toBe('');
    expect(searchFold('')).toBe('');
  });

  // Any text, the full Unicode range, lone surrogates aside (JSON names cannot hold them).
  const anyText = fc.string({ unit: 'grapheme', maxLength: 12 });

  it('is idempotent', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const once = searchFold(text);
        expect(searchFold(once)).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });

  it('folds the composed and the decomposed forms of a text alike', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const folded = searchFold(text.normalize('NFC'));
        expect(searchFold(text.normalize('NFD'))).toBe(folded);
        expect(searchFold(text.normalize('NFKC'))).toBe(folded);
        expect(searchFold(text)).toBe(folded);
      }),
      { numRuns: 2000 },
    );
  });

  it('ignores case: upper and lower case of a text fold alike', () => {
    fc.assert(
      fc.property(anyText, (text) => {
        expect(searchFold(text.toUpperCase())).toBe(searchFold(text.toLowerCase()));
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps a substring a substring: what a text contains, its folded form contains folded', () => {
    fc.assert(
      fc.property(anyText, anyText, anyText, (before, middle, after) => {
        // Whole grapheme clusters only: a mark cut from its letter is another text.
        expect(searchFold(before + middle + after)).toContain(searchFold(middle));
      }),
      { numRuns: 2000 },
    );
  });

  it('answers by the rules for ASCII text too (its fast path)', () => {
    const every = Array.from({ length: 128 }, (_, code) => String.fromCharCode(code));
    for (const char of every) expect(searchFold(char)).toBe(foldByTheRules(char));
    expect(searchFold(every.join(''))).toBe(foldByTheRules(every.join('')));
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 24 }), anyText, (ascii, text) => {
        expect(searchFold(ascii)).toBe(foldByTheRules(ascii));
        expect(searchFold(ascii + text)).toBe(foldByTheRules(ascii + text));
      }),
      { numRuns: 2000 },
    );
  });
});
