/* open.h - open-answer tasks: answers compared by agreement, not by label.
 *
 * In a task with `answers = open` any string is an answer and a task may
 * see any number of distinct answers. No dictionary of them is kept: each
 * answer is reduced to a 64-bit key (XXH3 of its normalized form), and a
 * joined row stores, instead of labels, its agreement pattern: walking the
 * models in id order, each distinct answer gets the next class 0, 1, 2, ...
 * (abstentions and missing answers keep their symbols, data.h). The truth
 * becomes the class of the answer equal to it, or ENS_OPEN_NONE when no
 * model gave it. Selection, combiners and bounds then run on classes: two
 * answers are "the same" exactly when they agree, whatever their text.
 *
 * Normalizations (which answers count as equal):
 *   exact    the bytes as given
 *   fold     ASCII whitespace trimmed at both ends, ASCII letters lowercased
 *            (" Paris" == "paris")
 *   numeric  trimmed, then parsed as a decimal number (strtod, C locale;
 *            no hexadecimal): equal values agree ("3.0" == "3" == "3e0";
 *            -0 == 0). An answer that is not a finite decimal number forms
 *            its own class by its exact text.
 *
 * Keys: two different normalized answers share a key with probability
 * 2^-64 per pair; within one row (at most ENS_MAX_MODELS answers) a false
 * agreement is below 2^-44.
 */
#ifndef ENSEMBLED_OPEN_H
#define ENSEMBLED_OPEN_H

#include <stddef.h>
#include <stdint.h>

#include "ensembled/data.h"

/* Classes 0 .. ENS_OPEN_MAX_CLASSES-1; the truth's "none of them". An
 * answer that would open class ENS_OPEN_MAX_CLASSES or more (a row with
 * more distinct answers than that) is stored as an abstention. */
#define ENS_OPEN_MAX_CLASSES (ENS_MAX_LABELS - 1)
#define ENS_OPEN_NONE ((uint8_t)(ENS_MAX_LABELS - 1))

typedef enum { ENS_ANSWERS_CHOICE, ENS_ANSWERS_OPEN } ens_answers_t;
typedef enum { ENS_NORM_EXACT, ENS_NORM_FOLD, ENS_NORM_NUMERIC } ens_norm_t;

/* Names <-> values ("choice", "open"; "exact", "fold", "numeric").
 * Parsers return 0, or ENS_ENOTFOUND for an unknown name. */
const char *ens_answers_name(ens_answers_t a);
int ens_answers_parse(const char *s, ens_answers_t *out);
const char *ens_norm_name(ens_norm_t n);
int ens_norm_parse(const char *s, ens_norm_t *out);

/* The key of answer s[0..len) under normalization n: equal keys for answers
 * equal after normalization. */
uint64_t ens_open_key(const char *s, size_t len, ens_norm_t n);

/* Turns one row into its agreement pattern, in place: on input x[i] is
 * ENS_SYM_ABSTAIN, ENS_SYM_MISSING (kept as they are) or anything else,
 * meaning model i answered with key[i]; on output every answer is its
 * class. Returns the class of truth (ENS_OPEN_NONE when no answer equals
 * it). Models are walked in index order, so the pattern does not depend on
 * the order in which answers arrived. */
uint8_t ens_open_pattern(const uint64_t *key, uint8_t *x, size_t n, uint64_t truth);

#endif
