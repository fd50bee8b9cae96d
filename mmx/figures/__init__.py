"""The paper's figures regenerated: the spiral of Figure 1 and the singular-value spectra of Section 3.2."""
