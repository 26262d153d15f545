//! Hierarchical bitmap of non-empty price levels.
//!
//! When the best level of a side empties, the next best non-empty level must
//! be found without scanning a possibly large, mostly empty band. Each layer
//! above the leaves has one bit per 64-bit word of the layer below ("that word
//! is non-zero"), so finding the next set bit in either direction costs a few
//! word operations per layer: three layers cover 2^18 ticks, four cover 2^24.

use crate::touch::{self, Structure};

/// Set of level indices in `0..len`, with next/previous-set-bit search.
#[derive(Debug, Clone)]
pub struct LevelBitmap {
    /// `layers[0]` holds one bit per level; `layers[k + 1]` one bit per word of
    /// `layers[k]`. The top layer is a single word.
    layers: Vec<Vec<u64>>,
}

impl LevelBitmap {
    /// An empty set over `0..len`.
    pub fn new(len: usize) -> LevelBitmap {
        let mut layers = Vec::new();
        let mut bits = len.max(1);
        loop {
            let words = bits.div_ceil(64);
            layers.push(vec![0u64; words]);
            if words == 1 {
                break;
            }
            bits = words;
        }
        LevelBitmap { layers }
    }

    /// Whether `index` is in the set.
    #[inline]
    pub fn contains(&self, index: u32) -> bool {
        let index = index as usize;
        self.layers[0]
            .get(index >> 6)
            .is_some_and(|word| word & (1 << (index & 63)) != 0)
    }

    /// Adds `index` (which must be below the length given to [`LevelBitmap::new`]).
    #[inline]
    pub fn insert(&mut self, index: u32) {
        let mut index = index as usize;
        for layer in &mut self.layers {
            let word = &mut layer[index >> 6];
            touch::record(Structure::Bitmap, word);
            let was_empty = *word == 0;
            *word |= 1 << (index & 63);
            if !was_empty {
                break;
            }
            index >>= 6;
        }
    }

    /// Removes `index`.
    #[inline]
    pub fn remove(&mut self, index: u32) {
        let mut index = index as usize;
        for layer in &mut self.layers {
            let word = &mut layer[index >> 6];
            touch::record(Structure::Bitmap, word);
            *word &= !(1 << (index & 63));
            if *word != 0 {
                break;
            }
            index >>= 6;
        }
    }

    /// Smallest member `>= from`.
    #[inline]
    pub fn next_at_or_after(&self, from: u32) -> Option<u32> {
        let mut index = from as usize;
        let mut layer = 0;
        // Climb until some word holds a member at or after `index`.
        loop {
            let words = self.layers.get(layer)?;
            let word_index = index >> 6;
            let word = *words.get(word_index)?;
            touch::record(Structure::Bitmap, &words[word_index]);
            let masked = word & (u64::MAX << (index & 63));
            if masked != 0 {
                index = (word_index << 6) | masked.trailing_zeros() as usize;
                break;
            }
            index = word_index + 1;
            layer += 1;
        }
        // Descend taking the lowest member of each word.
        while layer > 0 {
            layer -= 1;
            touch::record(Structure::Bitmap, &self.layers[layer][index]);
            index = (index << 6) | self.layers[layer][index].trailing_zeros() as usize;
        }
        Some(index as u32)
    }

    /// Largest member `<= from`.
    #[inline]
    pub fn prev_at_or_before(&self, from: u32) -> Option<u32> {
        let mut index = from as usize;
        let mut layer = 0;
        let leaf_words = self.layers[0].len();
        if index >= leaf_words << 6 {
            index = (leaf_words << 6) - 1;
        }
        loop {
            let words = self.layers.get(layer)?;
            let word_index = index >> 6;
            let word = words[word_index];
            touch::record(Structure::Bitmap, &words[word_index]);
            let masked = word & (u64::MAX >> (63 - (index & 63)));
            if masked != 0 {
                index = (word_index << 6) | (63 - masked.leading_zeros() as usize);
                break;
            }
            if word_index == 0 {
                return None;
            }
            index = word_index - 1;
            layer += 1;
        }
        while layer > 0 {
            layer -= 1;
            touch::record(Structure::Bitmap, &self.layers[layer][index]);
            index = (index << 6) | (63 - self.layers[layer][index].leading_zeros() as usize);
        }
        Some(index as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_next(set: &[bool], from: usize) -> Option<u32> {
        (from..set.len()).find(|&i| set[i]).map(|i| i as u32)
    }

    fn naive_prev(set: &[bool], from: usize) -> Option<u32> {
        (0..=from.min(set.len() - 1))
            .rev()
            .find(|&i| set[i])
            .map(|i| i as u32)
    }

    #[test]
    fn matches_naive_search_across_layers() {
        for len in [1usize, 63, 64, 65, 4096, 4097, 300_000] {
            let mut bitmap = LevelBitmap::new(len);
            let mut set = vec![false; len];
            let members: Vec<usize> = [0, 1, 63, 64, 200, 4095, 4096, 70_000, 299_999]
                .into_iter()
                .filter(|&i| i < len)
                .collect();
            for &m in &members {
                bitmap.insert(m as u32);
                set[m] = true;
            }
            // Remove one to exercise clearing of upper layers.
            if let Some(&m) = members.get(2) {
                bitmap.remove(m as u32);
                set[m] = false;
            }
            let probes = [0usize, 1, 2, 62, 63, 64, 65, 199, 201, 4095, 4096, 5000, 69_999];
            for &from in probes.iter().filter(|&&p| p < len) {
                assert_eq!(bitmap.next_at_or_after(from as u32), naive_next(&set, from));
                assert_eq!(bitmap.prev_at_or_before(from as u32), naive_prev(&set, from));
                assert_eq!(bitmap.contains(from as u32), set[from]);
            }
            assert_eq!(bitmap.next_at_or_after(len as u32 + 5), None);
        }
    }
}
