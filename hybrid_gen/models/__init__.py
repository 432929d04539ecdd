"Model families of the book; each chapter in nbs/10_models exports one module here."
