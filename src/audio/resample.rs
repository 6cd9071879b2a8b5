//! G.711 µ-law and A-law (ITU-T G.711), sample by sample and for slices.
// (being written)
